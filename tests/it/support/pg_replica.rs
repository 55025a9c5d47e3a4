//! A private PostgreSQL primary and its streaming replica for one test, on free ports: the primary
//! from `initdb` (`wal_level=replica`, replication allowed for trust on 127.0.0.1), the replica from
//! `pg_basebackup -R -X stream`, a hot standby that logs every statement, so a test counts the reads
//! that reached it. Both are stopped (`-m immediate`) and their directories removed when it is dropped.

use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use super::pg::{PrivatePostgres, execute};

/// What marks a read of tasks in the replica's statement log (every task read joins `users`).
const TASK_READ: &str = "FROM tasks t LEFT JOIN users u";
/// What marks a read of the event log.
const EVENT_READ: &str = "FROM events WHERE seq >";

pub struct ReplicaPair {
    pub primary: PrivatePostgres,
    pub replica: PrivatePostgres,
    database: String,
}

impl ReplicaPair {
    /// Starts both, creates `database` on the primary and waits until the replica, in recovery, has it.
    pub async fn start(database: &str) -> ReplicaPair {
        let primary = PrivatePostgres::start_with("-c wal_level=replica -c max_wal_senders=4 -c wal_keep_size=64MB");
        let replica =
            PrivatePostgres::standby_of(&primary, "-c hot_standby=on -c log_statement=all -c log_min_messages=warning");
        execute(&primary.url("postgres"), &format!("CREATE DATABASE {database}")).await;
        let pair = ReplicaPair { primary, replica, database: database.to_owned() };
        pair.wait_until_replica_answers().await;
        pair
    }

    pub fn primary_url(&self) -> String {
        self.primary.url(&self.database)
    }

    pub fn replica_url(&self) -> String {
        self.replica.url(&self.database)
    }

    /// The reads of tasks the replica has run so far (its statement log, counted).
    pub fn task_reads_on_replica(&self) -> usize {
        self.statements_on_replica(TASK_READ)
    }

    /// The reads of the event log the replica has run so far.
    pub fn event_reads_on_replica(&self) -> usize {
        self.statements_on_replica(EVENT_READ)
    }

    fn statements_on_replica(&self, marker: &str) -> usize {
        self.replica.log().lines().filter(|line| line.contains("execute") && line.contains(marker)).count()
    }

    /// Waits until the replica answers in recovery and holds this test's database.
    pub async fn wait_until_replica_answers(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = self.replica_url();
        loop {
            if let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await {
                let driver = tokio::spawn(connection);
                let in_recovery =
                    client.query_one("SELECT pg_is_in_recovery()", &[]).await.map(|row| row.get::<_, bool>(0));
                drop(client);
                let _ = driver.await;
                if let Ok(in_recovery) = in_recovery {
                    assert!(in_recovery, "the replica is not in recovery");
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the replica did not answer within 60 s:\n{}", self.replica.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
