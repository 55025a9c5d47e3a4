//! Figures: latency samples (median, p95, p99), throughputs, and the tables the bench prints.

use std::time::Duration;

/// Latency samples of one measurement.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    sorted: bool,
    values: Vec<Duration>,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Self { sorted: false, values: Vec::with_capacity(n) }
    }

    pub fn push(&mut self, d: Duration) {
        self.values.push(d);
        self.sorted = false;
    }

    pub fn extend(&mut self, other: Samples) {
        self.values.extend(other.values);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The nearest-rank quantile (`q` in 0..=1); zero when there is no sample.
    pub fn quantile(&mut self, q: f64) -> Duration {
        if self.values.is_empty() {
            return Duration::ZERO;
        }
        if !self.sorted {
            self.values.sort_unstable();
            self.sorted = true;
        }
        let rank = (q * self.values.len() as f64).ceil() as usize;
        self.values[rank.clamp(1, self.values.len()) - 1]
    }

    pub fn median(&mut self) -> Duration {
        self.quantile(0.5)
    }

    pub fn p95(&mut self) -> Duration {
        self.quantile(0.95)
    }

    pub fn p99(&mut self) -> Duration {
        self.quantile(0.99)
    }
}

/// Milliseconds with three decimals (µs resolution).
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// A signed difference in milliseconds (a receipt may precede the answer it is compared with).
pub fn ms_signed(micros: i64) -> String {
    format!("{:.3} ms", micros as f64 / 1000.0)
}

pub fn per_second(count: usize, elapsed: Duration) -> String {
    if elapsed.is_zero() {
        return "-".into();
    }
    format!("{:.0}/s", count as f64 / elapsed.as_secs_f64())
}

pub fn ratio(value: f64, floor: f64) -> String {
    if floor <= 0.0 {
        return "-".into();
    }
    format!("{:.2}×", value / floor)
}

pub fn kib(bytes: usize) -> String {
    format!("{bytes} B ({:.1} KiB)", bytes as f64 / 1024.0)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// One table of the report: a title, column headers, rows of text.
pub struct Table {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Self { title: title.into(), headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as GitHub-flavoured Markdown (readable as plain text too), aligned.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::from("|");
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = width - cell.chars().count();
                out.push(' ');
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
                out.push_str(" |");
            }
            out
        };
        let mut out = format!("### {}\n\n{}\n|", self.title, line(&self.headers));
        for width in &widths {
            out.push_str(&"-".repeat(width + 2));
            out.push('|');
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}
