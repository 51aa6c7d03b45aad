//! The flood rule under arbitrary arrival times: every line is
//! delivered, in its sender's order, never before it arrived, and no
//! sender ever gets more delivered than its burst plus its rate allows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;

use crate::codec::decode_payload;
use crate::protocol::{ClientFrame, HEADER_BYTES, Role, ServerFrame, parse_line};
use crate::room::flood::FloodLimit;
use crate::room::{ConnId, Room, RoomConfig};

/// (sender 0..3, gap before it in ms, text length 0..3000)
fn arrivals() -> impl Strategy<Value = Vec<(u8, u16, u16)>> {
    vec((0u8..3, 0u16..400, 0u16..3000), 1..120)
}

proptest! {
    #[test]
    fn every_line_is_delivered_in_order_within_the_allowance(
        arrivals in arrivals(),
        per_second in 1u32..20,
        burst in 1u32..12,
    ) {
        let limit = FloodLimit::new(per_second, burst).unwrap();
        let mut room = Room::new(RoomConfig { flood: Some(limit), ..RoomConfig::default() });
        let t0 = Instant::now();
        let mut now = t0;
        // Senders 1..=3, an observer 4 that reads everything.
        for conn in 1..=3 {
            assert!(room.handle_open(now, conn));
            room.handle_frame(now, conn, ClientFrame::Hello(Role::Participant));
            room.handle_frame(now, conn, ClientFrame::Username(format!("s{conn}")));
        }
        assert!(room.handle_open(now, 4));
        room.handle_frame(now, 4, ClientFrame::Hello(Role::Observer));
        // Each sender's clock started with its name; names cost a token.
        let mut sent: BTreeMap<ConnId, Vec<(String, Instant)>> = BTreeMap::new();
        let mut got: Vec<(String, Instant)> = Vec::new();
        let drain = |room: &mut Room, now: Instant, got: &mut Vec<(String, Instant)>| {
            while let Some(out) = room.poll_output() {
                for (to, frame) in out.deliveries() {
                    if to == 4
                        && let Ok(ServerFrame::Message(m)) = decode_payload(&frame[HEADER_BYTES..])
                    {
                        got.push((m, now));
                    }
                }
            }
        };
        let step = |room: &mut Room, until: Instant, now: &mut Instant, got: &mut Vec<_>| {
            while let Some(at) = room.poll_timeout().filter(|&at| at <= until) {
                *now = at.max(*now);
                room.handle_timeout(*now);
                drain(room, *now, got);
            }
            *now = until.max(*now);
        };
        drain(&mut room, now, &mut got);
        for (i, &(sender, gap, len)) in arrivals.iter().enumerate() {
            let conn = ConnId::from(sender) + 1;
            let at = now + Duration::from_millis(u64::from(gap));
            step(&mut room, at, &mut now, &mut got);
            let text = format!("{i}:{}", "x".repeat(usize::from(len).min(990)));
            room.handle_frame(now, conn, ClientFrame::Chat(text.clone()));
            drain(&mut room, now, &mut got);
            sent.entry(conn).or_default().push((text, now));
        }
        step(&mut room, now + Duration::from_secs(3600), &mut now, &mut got);
        // Every line, once, in its sender's order, not before it was sent.
        for (conn, lines) in &sent {
            let name = format!("s{conn}");
            let mine: Vec<_> = got
                .iter()
                .filter_map(|(m, at)| parse_line(m).filter(|l| l.sender == name).map(|l| (l.text, at)))
                .collect();
            prop_assert_eq!(mine.len(), lines.len());
            for ((delivered, at), (text, arrived)) in mine.iter().zip(lines) {
                prop_assert_eq!(*delivered, text.as_str());
                prop_assert!(*at >= arrived);
            }
            // Within any window from t0, at most burst + rate × window
            // tokens (each line costs at least one; the name took one).
            let interval = (Duration::from_secs(1) / per_second).as_nanos();
            for (k, (_, at)) in mine.iter().enumerate() {
                let window = at.duration_since(t0).as_nanos();
                let allowed = u128::from(burst) + window / interval;
                prop_assert!(k as u128 + 2 <= allowed, "line {} at {} ns", k, window);
            }
        }
        prop_assert_eq!(room.poll_timeout(), None);
    }
}
