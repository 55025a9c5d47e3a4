//! The Redis Streams publisher (stub: being written).
pub struct RedisPublisher {}
impl RedisPublisher {
    pub fn new(_url: &str, _prefix: &str, _maxlen: usize) -> crate::error::Result<Self> {
        Ok(Self {})
    }
}
