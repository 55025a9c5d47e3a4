//! How much the bench does: the full run's counts, or the smoke run's (a few seconds in all, to check
//! that every section still runs and produces numbers).

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Plan {
    pub smoke: bool,
    /// Fresh processes timed to their `initialize` answer.
    pub starts: usize,
    /// Calls of each tool in one session (and floor iterations).
    pub calls: usize,
    /// Concurrent stdio processes, and calls of each tool per process.
    pub processes: usize,
    pub calls_per_process: usize,
    /// HTTP load: connections and how long each measurement lasts.
    pub http_connections: usize,
    pub http_duration: Duration,
    /// The database connections of `serve` and of the raw-query comparison.
    pub pool_size: usize,
    /// SSE fan-out: (clients, events) per measurement.
    pub fanout: Vec<(usize, usize)>,
    /// Events written by the concurrent writers for the feed's throughput.
    pub feed_events: usize,
    /// Idle SSE connections held open for the memory figure.
    pub idle_connections: usize,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            smoke: false,
            starts: 30,
            calls: 1000,
            processes: 8,
            calls_per_process: 250,
            http_connections: 64,
            http_duration: Duration::from_secs(5),
            pool_size: 16,
            fanout: vec![(1, 300), (100, 200), (1000, 100)],
            feed_events: 4000,
            idle_connections: 10_000,
        }
    }

    pub fn smoke() -> Plan {
        Plan {
            smoke: true,
            starts: 3,
            calls: 10,
            processes: 2,
            calls_per_process: 5,
            http_connections: 4,
            http_duration: Duration::from_millis(300),
            pool_size: 2,
            fanout: vec![(1, 3), (5, 3)],
            feed_events: 20,
            idle_connections: 20,
        }
    }
}
