//! The trace context a message carries from one function to the next (W3C Trace Context), as
//! plain strings: the domain passes it along and never reads it. The SQS adapter sends it as
//! message attributes ([`TRACEPARENT`], [`TRACESTATE`]); the telemetry crate makes and reads it.
//! The hooks through which the domain opens the spans only it sees are [`crate::ports::Tracer`].

/// Name of the message attribute carrying the W3C `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// Name of the message attribute carrying the W3C `tracestate`.
pub const TRACESTATE: &str = "tracestate";
/// The data type SQS gives both attributes.
const ATTRIBUTE_TYPE: &str = "String";

/// One message's trace context: `traceparent` (`00-<trace id>-<span id>-<flags>`) and, when the
/// sender had one, `tracestate`. Not validated here: a malformed one is the telemetry's to
/// ignore (it then starts a new trace), never a reason to fail the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// `(name, value)` of each attribute it is sent as: `traceparent`, then `tracestate` when
    /// there is one (an empty one is not sent).
    pub fn attributes(&self) -> impl Iterator<Item = (&'static str, &str)> {
        std::iter::once((TRACEPARENT, self.traceparent.as_str())).chain(
            self.tracestate
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| (TRACESTATE, s)),
        )
    }

    /// Bytes these attributes add to a message, as SQS counts them against its size limits
    /// (name, data type and value of each).
    pub fn wire_bytes(&self) -> usize {
        self.attributes()
            .map(|(name, value)| name.len() + ATTRIBUTE_TYPE.len() + value.len())
            .sum()
    }

    /// The context from attribute values as received: `None` without a non-blank `traceparent`.
    pub fn from_attributes(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let traceparent = traceparent.map(str::trim).filter(|s| !s.is_empty())?;
        Some(TraceContext {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn attributes_and_their_size() {
        let only = TraceContext {
            traceparent: PARENT.into(),
            tracestate: None,
        };
        assert_eq!(
            only.attributes().collect::<Vec<_>>(),
            [(TRACEPARENT, PARENT)]
        );
        assert_eq!(only.wire_bytes(), 11 + 6 + 55);
        let both = TraceContext {
            tracestate: Some("k=v".into()),
            ..only.clone()
        };
        assert_eq!(both.attributes().count(), 2);
        assert_eq!(both.wire_bytes(), 72 + 10 + 6 + 3);
        let empty_state = TraceContext {
            tracestate: Some(String::new()),
            ..only
        };
        assert_eq!(empty_state.attributes().count(), 1);
    }

    #[test]
    fn a_missing_or_blank_traceparent_is_no_context() {
        assert_eq!(TraceContext::from_attributes(None, Some("k=v")), None);
        assert_eq!(TraceContext::from_attributes(Some("  "), None), None);
        let c = TraceContext::from_attributes(Some(PARENT), Some(" ")).unwrap();
        assert_eq!((c.traceparent.as_str(), c.tracestate), (PARENT, None));
    }
}
