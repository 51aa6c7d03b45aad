//! Who makes room when every socket is taken: the choice, and nothing else.
//!
//! When the server's socket table is full, a newcomer is not simply turned
//! away — that would let anyone who can hold the table (idle sockets that
//! never say `Hello`, participants that never choose a name) lock every
//! honest newcomer out for as long as it likes. Instead the newcomer takes
//! the place of the connection that has done least with its own:
//!
//! 1. the oldest connection that has not said `Hello` (it holds no slot,
//!    and an honest client says `Hello` in its first packet);
//! 2. if there is none, the oldest participant still without a name (it
//!    holds a slot but is in nobody's room yet, and an honest one names
//!    itself within a round trip or two of `Accepted`);
//! 3. if there is none either, nobody: the newcomer itself is refused.
//!
//! Members — named participants and observers — are never chosen: they are
//! the room, and a storm of newcomers must never cost the room a member.
//! Only connections *older* than the newcomer are candidates, so a
//! newcomer never takes the place of one that arrived after it. Oldest
//! first makes the newest the safest: an honest client that just arrived
//! is the last its own kind would lose, so keeping it out takes one new
//! connection for every older socket not yet past `Hello`, faster than it
//! can say `Hello` (SECURITY.md, threat 6).
//!
//! Pure: the room hands in each connection's id and [`Stage`], in id order;
//! [`choose`] answers whom to close. Ids grow in accept order and are never
//! reused, so a smaller id is an older connection.

use super::ConnId;

/// How far a connection has come, as far as making room is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Connected, no `Hello` yet: the first to go.
    BeforeHello,
    /// A participant holding a slot without a name: goes when no older
    /// connection is before `Hello`.
    Naming,
    /// A named participant or an observer: never goes.
    Member,
}

/// The connection to close to make room for a newcomer, and its stage (so
/// that it can be told why).
pub type Choice = (ConnId, Stage);

/// Whom to close so that `newcomer` can have a place: see the module docs.
/// `conns` must come in ascending id order (the room's `BTreeMap` order);
/// the scan stops at the first connection before `Hello`, or at the
/// newcomer. `None`: nobody may go, and the newcomer is refused.
///
/// The cost is one step per connection scanned: members and naming
/// participants are at most the room's slots (510 by default) and every
/// other connection is before `Hello`, so at most 511 steps whatever the
/// table's size.
pub fn choose(newcomer: ConnId, conns: impl IntoIterator<Item = Choice>) -> Option<Choice> {
    let mut oldest_naming = None;
    for (conn, stage) in conns {
        if conn >= newcomer {
            break;
        }
        match stage {
            Stage::BeforeHello => return Some((conn, stage)),
            Stage::Naming if oldest_naming.is_none() => oldest_naming = Some((conn, stage)),
            Stage::Naming | Stage::Member => {}
        }
    }
    oldest_naming
}

#[cfg(test)]
mod tests {
    use super::Stage::{BeforeHello, Member, Naming};
    use super::*;

    fn table(stages: &[Stage]) -> Vec<Choice> {
        (1..).zip(stages.iter().copied()).collect()
    }

    /// The decision table, row by row.
    #[test]
    fn the_oldest_before_hello_then_the_oldest_naming_then_nobody() {
        let rows: &[(&[Stage], Option<Choice>)] = &[
            // Empty table: nobody to close.
            (&[], None),
            // Only members: the newcomer is refused.
            (&[Member, Member, Member], None),
            // Before-Hello goes first, the oldest of them.
            (&[Member, BeforeHello, BeforeHello], Some((2, BeforeHello))),
            // ...even when a naming participant is older.
            (&[Naming, Member, BeforeHello], Some((3, BeforeHello))),
            // No one before Hello: the oldest naming participant.
            (&[Member, Naming, Naming, Member], Some((2, Naming))),
            (&[Naming], Some((1, Naming))),
            (&[BeforeHello], Some((1, BeforeHello))),
        ];
        for (stages, want) in rows {
            assert_eq!(choose(100, table(stages)), *want, "{stages:?}");
        }
    }

    #[test]
    fn nobody_newer_than_the_newcomer_is_chosen() {
        let conns = vec![(1, Member), (5, BeforeHello), (7, Naming)];
        assert_eq!(choose(5, conns.clone()), None, "5 is the newcomer itself");
        assert_eq!(choose(4, conns.clone()), None);
        assert_eq!(choose(6, conns.clone()), Some((5, BeforeHello)));
        let naming_only = vec![(1, Member), (7, Naming), (9, BeforeHello)];
        assert_eq!(choose(8, naming_only.clone()), Some((7, Naming)));
        assert_eq!(choose(7, naming_only), None);
    }

    #[test]
    fn the_scan_stops_at_the_first_connection_before_hello() {
        // An iterator that would panic past the answer proves the early stop.
        let conns = [(1, Member), (2, Naming), (3, BeforeHello)]
            .into_iter()
            .chain(std::iter::once_with(|| panic!("scanned past the answer")));
        assert_eq!(choose(10, conns), Some((3, BeforeHello)));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn stage() -> impl Strategy<Value = Stage> {
            prop_oneof![
                Just(Stage::BeforeHello),
                Just(Stage::Naming),
                Just(Stage::Member)
            ]
        }

        proptest! {
            /// Against the rule written the slow way: of the connections
            /// older than the newcomer, the smallest (stage, id) among
            /// those not members.
            #[test]
            fn matches_the_rule_written_plainly(
                stages in proptest::collection::vec(stage(), 0..60),
                gaps in proptest::collection::vec(1u64..4, 60),
                newcomer in 0u64..200,
            ) {
                let mut id = 0;
                let conns: Vec<Choice> = stages
                    .iter()
                    .zip(&gaps)
                    .map(|(&stage, gap)| {
                        id += gap;
                        (id, stage)
                    })
                    .collect();
                let plain = conns
                    .iter()
                    .copied()
                    .filter(|&(conn, stage)| conn < newcomer && stage != Stage::Member)
                    .min_by_key(|&(conn, stage)| (stage, conn));
                let chosen = choose(newcomer, conns.iter().copied());
                prop_assert_eq!(chosen, plain);
                if let Some((conn, stage)) = chosen {
                    prop_assert!(stage != Stage::Member, "a member was chosen");
                    prop_assert!(conn < newcomer, "a newer connection was chosen");
                    prop_assert!(conns.contains(&(conn, stage)), "not in the table");
                } else {
                    prop_assert!(
                        conns.iter().all(|&(c, s)| c >= newcomer || s == Stage::Member),
                        "refused although someone older could go"
                    );
                }
            }
        }
    }
}
