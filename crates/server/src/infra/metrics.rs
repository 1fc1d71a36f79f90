//! The server's figures for Prometheus, served apart from the sign-in
//! listener (see `http::metrics`). Most counters follow the audit log:
//! every transaction writes an audit row, and [`Metrics::audited`] counts
//! the rows a monitoring system cares about as their transaction commits,
//! so a figure and the log cannot disagree.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets, in seconds: 1 ms to 60 s (a push waits for a person).
const PUSH_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Database call buckets, in seconds: 50 µs to 1 s.
const STORE_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// How a push settles (`countersign_challenges_total{result}`): the four
/// answers, then expiry.
const RESULTS: [&str; 5] = [
    "approved",
    "denied",
    "reported",
    "number_mismatch",
    "expired",
];

/// The registry and every figure in it.
pub struct Metrics {
    registry: Registry,
    round_trip: Histogram,
    delivery: Histogram,
    pushes: IntCounter,
    challenges: IntCounterVec,
    streams: IntGauge,
    sign_in_steps: IntCounterVec,
    sign_ins: IntCounter,
    lockouts: IntCounter,
    totp_replays: IntCounter,
    rate_limited: IntCounter,
    store: HistogramVec,
}

/// A figure's name and help text.
type Named = (&'static str, &'static str);

const ROUND_TRIP: Named = (
    "countersign_push_round_trip_seconds",
    "From a push's creation to the device's signed answer.",
);
const DELIVERY: Named = (
    "countersign_push_delivery_seconds",
    "From a push's creation to the device's signed delivery receipt.",
);
const PUSHES: Named = ("countersign_pushes_total", "Push challenges created.");
const CHALLENGES: Named = (
    "countersign_challenges_total",
    "Push challenges settled, by result (approved, denied, reported, number_mismatch, expired).",
);
const STREAMS: Named = (
    "countersign_device_streams",
    "Device challenge streams connected to this instance.",
);
const STEPS: Named = (
    "countersign_sign_in_steps_total",
    "Sign-in checks by method (password, push, totp, phone, questions) and outcome.",
);
const SIGN_INS: Named = (
    "countersign_sign_ins_total",
    "Sign-ins completed through the pages (both factors passed).",
);
const LOCKOUTS: Named = (
    "countersign_lockouts_total",
    "Accounts locked by too many failures.",
);
const REPLAYS: Named = (
    "countersign_totp_replays_refused_total",
    "TOTP codes refused because they were already used.",
);
const LIMITED: Named = (
    "countersign_rate_limited_total",
    "Requests refused by a rate limit (Too Many Requests).",
);
const STORE: Named = (
    "countersign_store_seconds",
    "Database calls by access (read, write), waiting for a connection included.",
);
const BUILD: Named = (
    "countersign_build_info",
    "Always 1; the labels say which build runs.",
);

impl Metrics {
    /// Every figure at zero, in a registry of its own (several servers in
    /// one process, as in tests, do not mix).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let histogram = |(name, help): Named, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        };
        let counter = |(name, help): Named| IntCounter::new(name, help);
        let by = |(name, help): Named, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let m = Metrics {
            round_trip: histogram(ROUND_TRIP, PUSH_BUCKETS)?,
            delivery: histogram(DELIVERY, PUSH_BUCKETS)?,
            pushes: counter(PUSHES)?,
            challenges: by(CHALLENGES, &["result"])?,
            streams: IntGauge::new(STREAMS.0, STREAMS.1)?,
            sign_in_steps: by(STEPS, &["method", "outcome"])?,
            sign_ins: counter(SIGN_INS)?,
            lockouts: counter(LOCKOUTS)?,
            totp_replays: counter(REPLAYS)?,
            rate_limited: counter(LIMITED)?,
            store: HistogramVec::new(
                HistogramOpts::new(STORE.0, STORE.1).buckets(STORE_BUCKETS.to_vec()),
                &["access"],
            )?,
            registry,
        };
        // Known series start at zero, so they are listed from the first
        // scrape and `rate()` sees their first increase.
        for result in RESULTS {
            m.challenges.with_label_values(&[result]);
            m.sign_in_steps.with_label_values(&["push", result]);
        }
        for method in ["password", "totp", "phone", "questions"] {
            for outcome in ["ok", "refused", "locked"] {
                m.sign_in_steps.with_label_values(&[method, outcome]);
            }
        }
        m.sign_in_steps.with_label_values(&["push", "refused"]);
        for access in ["read", "write"] {
            m.store.with_label_values(&[access]);
        }
        let build = IntGaugeVec::new(Opts::new(BUILD.0, BUILD.1), &["version"])?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let r = &m.registry;
        r.register(Box::new(m.round_trip.clone()))?;
        r.register(Box::new(m.delivery.clone()))?;
        r.register(Box::new(m.pushes.clone()))?;
        r.register(Box::new(m.challenges.clone()))?;
        r.register(Box::new(m.streams.clone()))?;
        r.register(Box::new(m.sign_in_steps.clone()))?;
        r.register(Box::new(m.sign_ins.clone()))?;
        r.register(Box::new(m.lockouts.clone()))?;
        r.register(Box::new(m.totp_replays.clone()))?;
        r.register(Box::new(m.rate_limited.clone()))?;
        r.register(Box::new(m.store.clone()))?;
        r.register(Box::new(build))?;
        Ok(m)
    }

    /// Counts a committed audit row (action, outcome, detail) where it
    /// matters to monitoring; other rows count nowhere.
    pub fn audited(&self, action: &str, outcome: &str, detail: &str) {
        let method = match action {
            "signin.password" => Some("password"),
            "challenge.answer" => Some("push"),
            "totp.verify" => Some("totp"),
            "method.phone.check" => Some("phone"),
            "method.questions.check" => Some("questions"),
            _ => None,
        };
        if let Some(method) = method {
            self.sign_in_steps
                .with_label_values(&[method, outcome])
                .inc();
        }
        match action {
            "challenge.create" if outcome == "ok" => self.pushes.inc(),
            // A refused answer (bad signature, wrong device) settles
            // nothing, and one after expiry settles nothing new: expiry
            // counts once, from its own row (`challenge.expired`).
            "challenge.answer" if RESULTS[..4].contains(&outcome) => {
                self.challenges.with_label_values(&[outcome]).inc()
            }
            "challenge.expired" => self.challenges.with_label_values(&["expired"]).inc(),
            "signin.complete" => self.sign_ins.inc(),
            "totp.verify" if detail == "code already used" => self.totp_replays.inc(),
            _ => {}
        }
        if outcome == "locked" {
            self.lockouts.inc();
        }
    }

    /// A device's signed answer, `after` the push was created.
    pub fn answered(&self, after: Duration) {
        self.round_trip.observe(after.as_secs_f64());
    }

    /// A device's signed delivery receipt, `after` the push was created.
    pub fn delivered(&self, after: Duration) {
        self.delivery.observe(after.as_secs_f64());
    }

    /// A request refused by a rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// The database latency histogram, for the store to fill.
    pub fn store_latency(&self) -> HistogramVec {
        self.store.clone()
    }

    /// Every figure in Prometheus's text format, with `streams` device
    /// streams connected now.
    pub fn render(&self, streams: usize) -> Result<String, prometheus::Error> {
        self.streams.set(i64::try_from(streams).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn audit_rows_count_where_monitoring_looks() {
        let m = Metrics::new().expect("metrics");
        m.audited("challenge.create", "ok", "");
        m.audited("challenge.answer", "approved", "challenge x signature y");
        m.audited("challenge.answer", "refused", "bad signature");
        m.audited("challenge.expired", "expired", "x");
        m.audited("challenge.answer", "expired", "answered after expiry");
        m.audited("totp.verify", "refused", "code already used");
        m.audited("totp.verify", "locked", "wrong code");
        m.audited("signin.password", "locked", "too many failed sign-ins");
        m.audited("user.add", "ok", "");
        m.answered(Duration::from_millis(7));
        let text = m.render(3).expect("render");
        let got = |s| value(&text, s);
        assert_eq!(got("countersign_pushes_total"), Some(1.0));
        assert_eq!(
            got("countersign_challenges_total{result=\"approved\"}"),
            Some(1.0)
        );
        assert_eq!(
            got("countersign_challenges_total{result=\"expired\"}"),
            Some(1.0)
        );
        assert_eq!(
            got("countersign_challenges_total{result=\"refused\"}"),
            None,
            "a refused answer settles nothing"
        );
        assert_eq!(
            got("countersign_challenges_total{result=\"denied\"}"),
            Some(0.0),
            "known results start at zero"
        );
        assert_eq!(
            got("countersign_sign_in_steps_total{method=\"push\",outcome=\"refused\"}"),
            Some(1.0)
        );
        assert_eq!(got("countersign_totp_replays_refused_total"), Some(1.0));
        assert_eq!(got("countersign_lockouts_total"), Some(2.0));
        assert_eq!(got("countersign_device_streams"), Some(3.0));
        assert_eq!(got("countersign_push_round_trip_seconds_count"), Some(1.0));
        assert_eq!(
            got("countersign_push_round_trip_seconds_bucket{le=\"0.01\"}"),
            Some(1.0)
        );
        assert_eq!(
            got("countersign_push_round_trip_seconds_bucket{le=\"0.005\"}"),
            Some(0.0)
        );
        assert!(text.contains("countersign_build_info{version=\""));
    }
}
