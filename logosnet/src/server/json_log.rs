//! `--log-format json`: tracing-subscriber's own JSON output (one object a
//! line, the event's fields at the top level), with the connection's peer
//! address spliced into every event that names a connection (`conn`) but
//! not its address. Most connection events are the room's, and the room
//! knows connections by id alone; [`Peers`] knows the addresses.
//!
//! The splice re-reads the line the JSON formatter wrote (a few hundred
//! bytes, at info level a handful of events a second per connection); the
//! text format is untouched.

use std::fmt;
use std::sync::Arc;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::Peers;

/// The JSON event format with `peer` spliced in; see the module docs.
pub struct JsonWithPeer {
    inner: Format<Json>,
    peers: Arc<Peers>,
}

impl JsonWithPeer {
    /// tracing-subscriber's JSON format, flattened (fields at the top
    /// level), with each connection's address from `peers`.
    pub fn new(peers: Arc<Peers>) -> Self {
        Self {
            inner: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false),
            peers,
        }
    }

    /// Fields for [`JsonWithPeer`]: JSON ones.
    pub fn fields() -> JsonFields {
        JsonFields::new()
    }
}

impl<S, N> FormatEvent<S, N> for JsonWithPeer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&splice_peer(&line, &self.peers))
    }
}

/// `line` (one JSON object and a newline) with `"peer"` added if it names a
/// `conn` whose address is known and has no `peer` of its own; otherwise
/// `line` as it is.
pub fn splice_peer(line: &str, peers: &Peers) -> String {
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str(line) else {
        return line.to_owned();
    };
    if object.contains_key("peer") {
        return line.to_owned();
    }
    let Some(peer) = object
        .get("conn")
        .and_then(serde_json::Value::as_u64)
        .and_then(|conn| peers.peer(conn))
    else {
        return line.to_owned();
    };
    object.insert("peer".to_owned(), peer.to_string().into());
    let mut spliced = serde_json::Value::Object(object).to_string();
    spliced.push('\n');
    spliced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_connection_gets_its_peer_and_nothing_else_changes() {
        let peers = Peers::default();
        let addr = "192.0.2.7:50123".parse().expect("an address");
        peers.opened(3, addr);
        let line = "{\"level\":\"INFO\",\"message\":\"joined\",\"conn\":3}\n";
        let spliced: serde_json::Value =
            serde_json::from_str(&splice_peer(line, &peers)).expect("JSON");
        assert_eq!(spliced["peer"], "192.0.2.7:50123");
        assert_eq!(spliced["conn"], 3);
        assert_eq!(spliced["message"], "joined");
        // Not open, no conn, a peer of its own, not JSON: as it was.
        let unknown = "{\"message\":\"left\",\"conn\":4}\n";
        assert_eq!(splice_peer(unknown, &peers), unknown);
        let none = "{\"message\":\"listening\"}\n";
        assert_eq!(splice_peer(none, &peers), none);
        let own = "{\"conn\":3,\"peer\":\"198.51.100.1:1\"}\n";
        assert_eq!(splice_peer(own, &peers), own);
        assert_eq!(splice_peer("not json\n", &peers), "not json\n");
        peers.closed(3);
        assert_eq!(splice_peer(line, &peers), line);
    }
}
