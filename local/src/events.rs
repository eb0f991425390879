//! The analytics events the load generator sends, and how an event's id is
//! found again in whatever carries it (a delivered line, a rejected
//! record's bytes, a dead letter).
//!
//! Valid events follow the bridge's default contract (`event_id`,
//! `event_type`, an RFC 3339 `timestamp`, plus properties). Invalid ones
//! break it in one of several ways but always carry `"event_id":"…"`, so
//! the verifier can tell which sent event a rejection was.

use rand::RngExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const EVENT_TYPES: &[&str] = &[
    "page_view",
    "add_to_cart",
    "checkout",
    "search",
    "sign_in",
    "video_play",
];
const REFERRERS: &[&str] = &["search", "email", "direct", "social", "ads"];

/// Builds events of about `size` bytes.
#[derive(Debug, Clone, Copy)]
pub struct EventShape {
    pub size: usize,
}

impl EventShape {
    /// A valid event with id `id`.
    pub fn valid(&self, id: &str, rng: &mut impl rand::Rng) -> Vec<u8> {
        let timestamp = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        let event_type = EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())];
        let referrer = REFERRERS[rng.random_range(0..REFERRERS.len())];
        let user: u32 = rng.random_range(0..1_000_000);
        let product: u32 = rng.random_range(0..50_000);
        let mut event = format!(
            r#"{{"event_id":"{id}","event_type":"{event_type}","timestamp":"{timestamp}","user_id":"u-{user}","properties":{{"path":"/products/{product}","referrer":"{referrer}","pad":""#
        );
        // Pad up to the requested size with a property, closing the JSON.
        let closing = r#""}}"#;
        let pad = self.size.saturating_sub(event.len() + closing.len());
        event.extend(std::iter::repeat_n('x', pad));
        event.push_str(closing);
        event.into_bytes()
    }

    /// An invalid event with id `id`, broken in the way `kind` picks.
    pub fn invalid(&self, id: &str, kind: usize) -> Vec<u8> {
        let timestamp = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        match kind % 5 {
            0 => format!(r#"{{"event_id":"{id}","event_type":"page_view"}}"#),
            1 => format!(r#"{{"event_id":"{id}","event_type":"page_view","timestamp":"yesterday"}}"#),
            2 => format!(r#"{{"event_id":"{id}","event_type":"","timestamp":"{timestamp}"}}"#),
            3 => format!(r#"[{{"event_id":"{id}","event_type":"page_view","timestamp":"{timestamp}"}}]"#),
            _ => format!(r#"{{"event_id":"{id}","event_type":"page_view","timestamp":"#),
        }
        .into_bytes()
    }
}

/// The `event_id` in `bytes`: the value of the first `"event_id":"…"`.
pub fn event_id(bytes: &[u8]) -> Option<&str> {
    const KEY: &[u8] = br#""event_id":""#;
    let start = bytes.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = bytes[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&bytes[start..start + len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinesis_firehose_bridge::event::Contract;

    #[test]
    fn valid_events_pass_the_bridges_contract_at_the_requested_size() {
        let shape = EventShape { size: 300 };
        let mut rng = rand::rng();
        let event = shape.valid("r1-0-7", &mut rng);
        assert_eq!(event.len(), 300);
        assert!(Contract::Default.check(&event).is_ok());
        assert_eq!(event_id(&event), Some("r1-0-7"));
    }

    #[test]
    fn invalid_events_fail_the_contract_and_keep_their_id() {
        let shape = EventShape { size: 300 };
        for kind in 0..5 {
            let event = shape.invalid("r1-0-9", kind);
            assert!(Contract::Default.check(&event).is_err(), "kind {kind}");
            assert_eq!(event_id(&event), Some("r1-0-9"), "kind {kind}");
        }
    }
}
