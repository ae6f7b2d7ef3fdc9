//! The in-process broker: one node, so there is nowhere to carry a
//! publication; the manager's local fan-out is the whole delivery.

use super::{Ack, Broker, BrokerError, Envelope};

#[derive(Debug, Default)]
pub struct MemoryBroker;

impl Broker for MemoryBroker {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn forward(&self, _envelope: &Envelope) -> Result<Option<Ack>, BrokerError> {
        Ok(None)
    }
}
