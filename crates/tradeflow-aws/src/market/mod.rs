//! The HTTP market-data provider: Alpaca Market Data (US stocks and crypto) behind the
//! [`MarketData`] port.
//!
//! - **Requests** ([`alpaca`]): one series per request, `sort=desc` with `limit` for the most
//!   recent candles, `sort=asc` from the cursor for catching up, following `next_page_token`.
//! - **Closed candles only**: a bar whose `time + timeframe` is after `now` (the one still
//!   forming) is dropped, as are invalid bars and duplicates; gaps (nights, weekends, halts) stay
//!   gaps.
//! - **Rate limits**: a token bucket of `requests_per_minute` (Alpaca's free plan: 200/min)
//!   shared by every stream; a `429` answer, or `X-RateLimit-Remaining: 0`, holds every request
//!   until `X-RateLimit-Reset` (or `Retry-After`), at most [`ClientPolicy::max_rate_limit_wait`].
//! - **Retries**: `429`, `5xx`, `408`, timeouts, connection failures and malformed bodies are
//!   retried with exponential backoff ([`ClientPolicy`]); other `4xx` (bad key, unknown symbol)
//!   are not. What still fails is a [`MarketDataError::Provider`] for that stream only: the
//!   generator reports it and scans the other streams.
//! - **Late corrections** ([`alpaca::Corrections`]): a bar served before that comes back with
//!   other values is logged and counted, never re-evaluated (the stream's cursor is past it).
//! - **The key**: `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` headers, from the environment or a
//!   Secrets Manager secret read on first use ([`ApiKeySource`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;
use tradeflow_core::market::{AlpacaSettings, ApiKeySource, MarketData, MarketDataError};
use tradeflow_core::vocab::{Bar, Timeframe};

pub mod alpaca;
pub mod transport;

use alpaca::{AssetClass, Corrections, PageRequest, Sort};
pub use transport::{HttpGet, HttpReply, SdkHttp, TransportError};

const PROVIDER: &str = "alpaca";

/// Retry, timeout and rate-limit settings of the client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientPolicy {
    /// Attempts per page request (1 = no retry).
    pub attempts: u32,
    /// Backoff before retry n (1-based): `base_delay × 2^(n-1)`, at most `max_delay`.
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
    /// Longest wait for a rate-limit window to reset; beyond it the stream fails (retryable) so
    /// the scan ends in time.
    pub max_rate_limit_wait: Duration,
    /// Pages followed per series request at most.
    pub max_pages: usize,
    /// Bucket size of the token bucket (burst).
    pub burst: u32,
}

impl Default for ClientPolicy {
    fn default() -> Self {
        ClientPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_rate_limit_wait: Duration::from_secs(15),
            max_pages: 20,
            burst: 10,
        }
    }
}

/// The API key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `APCA-API-KEY-ID`.
    pub key_id: String,
    /// `APCA-API-SECRET-KEY`.
    pub secret_key: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("key_id", &self.key_id)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl ApiKey {
    /// The key of a secret string `{"key_id": "…", "secret_key": "…"}`.
    pub fn from_secret_json(text: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Secret {
            key_id: String,
            secret_key: String,
        }
        let s: Secret = serde_json::from_str(text).map_err(|e| {
            // serde's message names the field, never the value.
            format!("the secret is not {{\"key_id\": …, \"secret_key\": …}}: {e}")
        })?;
        Ok(ApiKey {
            key_id: s.key_id,
            secret_key: s.secret_key,
        })
    }
}

/// Where the key comes from at run time.
enum KeyProvider {
    Static(ApiKey),
    Secret {
        client: aws_sdk_secretsmanager::Client,
        arn: String,
        cached: OnceCell<ApiKey>,
    },
}

impl KeyProvider {
    async fn key(&self) -> Result<ApiKey, (String, bool)> {
        match self {
            KeyProvider::Static(key) => Ok(key.clone()),
            KeyProvider::Secret {
                client,
                arn,
                cached,
            } => cached
                .get_or_try_init(|| async {
                    let out = client
                        .get_secret_value()
                        .secret_id(arn)
                        .send()
                        .await
                        .map_err(|e| {
                            let class = crate::error::classify(&e);
                            (
                                format!(
                                    "reading the API key from {arn}: {}",
                                    tradeflow_core::error::error_chain(&e)
                                ),
                                class == crate::error::ErrorClass::Transient,
                            )
                        })?;
                    let text = out
                        .secret_string()
                        .ok_or_else(|| (format!("secret {arn} has no SecretString"), false))?;
                    ApiKey::from_secret_json(text).map_err(|e| (format!("{arn}: {e}"), false))
                })
                .await
                .cloned(),
        }
    }
}

/// A shared token bucket with a "hold until" for rate-limit answers.
struct RateLimiter {
    state: Mutex<Bucket>,
    per_second: f64,
    capacity: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    hold_until: Option<Instant>,
}

impl RateLimiter {
    fn new(per_minute: u32, burst: u32) -> Self {
        let capacity = f64::from(burst.max(1));
        RateLimiter {
            state: Mutex::new(Bucket {
                tokens: capacity,
                at: Instant::now(),
                hold_until: None,
            }),
            per_second: f64::from(per_minute.max(1)) / 60.0,
            capacity,
        }
    }

    /// Waits for a token.
    async fn acquire(&self) {
        loop {
            let wait = {
                let mut b = self.state.lock().await;
                let now = Instant::now();
                if let Some(until) = b.hold_until
                    && until > now
                {
                    until - now
                } else {
                    b.hold_until = None;
                    let elapsed = now.duration_since(b.at).as_secs_f64();
                    b.tokens = (b.tokens + elapsed * self.per_second).min(self.capacity);
                    b.at = now;
                    if b.tokens >= 1.0 {
                        b.tokens -= 1.0;
                        return;
                    }
                    Duration::from_secs_f64((1.0 - b.tokens) / self.per_second)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Every request waits `wait` from now (the provider's window is spent).
    async fn hold(&self, wait: Duration) {
        let mut b = self.state.lock().await;
        let until = Instant::now() + wait;
        b.hold_until = Some(b.hold_until.map_or(until, |u| u.max(until)));
        b.tokens = 0.0;
    }
}

/// Counters of what the client did (for logs and tests).
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Requests sent (retries included).
    pub requests: AtomicU64,
    /// Retries.
    pub retries: AtomicU64,
    /// Rate-limit answers (`429`).
    pub rate_limited: AtomicU64,
    /// Bars left out because they were still forming.
    pub forming_dropped: AtomicU64,
    /// Bars left out because they were not valid candles.
    pub invalid_dropped: AtomicU64,
}

/// Alpaca Market Data behind the [`MarketData`] port.
pub struct AlpacaMarketData {
    http: Arc<dyn HttpGet>,
    data_url: String,
    stock_feed: String,
    key: KeyProvider,
    limiter: RateLimiter,
    policy: ClientPolicy,
    corrections: std::sync::Mutex<Corrections>,
    /// What the client did so far.
    pub stats: ClientStats,
    /// Wall clock (Unix seconds) for the rate-limit reset header.
    wall_clock: fn() -> i64,
}

/// Why one page request failed.
struct Failure {
    reason: String,
    retryable: bool,
    /// A rate-limit answer's wait, if it gave one.
    rate_limit_wait: Option<Duration>,
}

impl AlpacaMarketData {
    /// A client with the key given directly.
    pub fn new(
        http: Arc<dyn HttpGet>,
        data_url: impl Into<String>,
        stock_feed: impl Into<String>,
        requests_per_minute: u32,
        key: ApiKey,
        policy: ClientPolicy,
    ) -> Self {
        Self::with_key(
            http,
            data_url.into(),
            stock_feed.into(),
            requests_per_minute,
            KeyProvider::Static(key),
            policy,
        )
    }

    /// The production client: the settings' URL, feed and rate, the key from the environment
    /// or the Secrets Manager secret (read with `sdk` on first use), over the SDK's HTTPS stack
    /// with Mozilla's roots and a 10 s timeout per request.
    pub fn from_settings(settings: &AlpacaSettings, sdk: &aws_config::SdkConfig) -> Self {
        let http = Arc::new(SdkHttp::new(
            &crate::tls::TrustRoots::mozilla(),
            Duration::from_secs(10),
        ));
        let key = match &settings.key {
            ApiKeySource::Env { key_id, secret_key } => KeyProvider::Static(ApiKey {
                key_id: key_id.clone(),
                secret_key: secret_key.clone(),
            }),
            ApiKeySource::SecretArn(arn) => KeyProvider::Secret {
                client: aws_sdk_secretsmanager::Client::new(sdk),
                arn: arn.clone(),
                cached: OnceCell::new(),
            },
        };
        Self::with_key(
            http,
            settings.data_url.clone(),
            settings.stock_feed.clone(),
            settings.requests_per_minute,
            key,
            ClientPolicy::default(),
        )
    }

    fn with_key(
        http: Arc<dyn HttpGet>,
        data_url: String,
        stock_feed: String,
        requests_per_minute: u32,
        key: KeyProvider,
        policy: ClientPolicy,
    ) -> Self {
        AlpacaMarketData {
            http,
            data_url,
            stock_feed,
            key,
            limiter: RateLimiter::new(requests_per_minute, policy.burst),
            policy,
            corrections: std::sync::Mutex::default(),
            stats: ClientStats::default(),
            wall_clock: || chrono::Utc::now().timestamp(),
        }
    }

    /// Late corrections seen so far ([`alpaca::Corrections`]).
    pub fn corrections(&self) -> u64 {
        self.corrections
            .lock()
            .map_or_else(|p| p.into_inner().count(), |c| c.count())
    }

    fn error(series: &str, reason: String, retryable: bool) -> MarketDataError {
        MarketDataError::Provider {
            provider: PROVIDER,
            series: series.to_owned(),
            reason,
            retryable,
        }
    }

    /// One page, with rate limiting and retries.
    async fn page(
        &self,
        series: &str,
        request: &PageRequest,
    ) -> Result<alpaca::Page, MarketDataError> {
        let key = self
            .key
            .key()
            .await
            .map_err(|(reason, retryable)| Self::error(series, reason, retryable))?;
        let url = request.url(&self.data_url, &self.stock_feed);
        let headers = [
            ("APCA-API-KEY-ID", key.key_id.clone()),
            ("APCA-API-SECRET-KEY", key.secret_key.clone()),
            ("Accept", "application/json".to_owned()),
        ];
        let attempts = self.policy.attempts.max(1);
        let mut last = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                let exp = self
                    .policy
                    .base_delay
                    .saturating_mul(1 << (attempt - 2).min(16));
                tokio::time::sleep(exp.min(self.policy.max_delay)).await;
            }
            self.limiter.acquire().await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            match self.attempt(&url, &headers, &request.symbol).await {
                Ok(page) => return Ok(page),
                Err(f) => {
                    if let Some(wait) = f.rate_limit_wait {
                        self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                        if wait > self.policy.max_rate_limit_wait {
                            return Err(Self::error(
                                series,
                                format!(
                                    "{}; the rate-limit window resets in {} s, after this scan",
                                    f.reason,
                                    wait.as_secs()
                                ),
                                true,
                            ));
                        }
                        self.limiter.hold(wait).await;
                    }
                    tracing::debug!(%series, attempt, reason = %f.reason, retryable = f.retryable, "market data request failed");
                    if !f.retryable {
                        return Err(Self::error(series, f.reason, false));
                    }
                    last = Some(f.reason);
                }
            }
        }
        Err(Self::error(
            series,
            format!("{} (after {attempts} attempts)", last.unwrap_or_default()),
            true,
        ))
    }

    async fn attempt(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        symbol: &str,
    ) -> Result<alpaca::Page, Failure> {
        let reply = self.http.get(url, headers).await.map_err(|e| Failure {
            reason: e.to_string(),
            retryable: true,
            rate_limit_wait: None,
        })?;
        let now = (self.wall_clock)();
        let wait =
            alpaca::rate_limit_wait(&reply.headers, now).map(|s| Duration::from_secs(s as u64));
        match reply.status {
            200 => {
                // The window is spent: later requests wait for its reset.
                if alpaca::rate_limit_remaining(&reply.headers) == Some(0)
                    && let Some(wait) = wait
                {
                    self.limiter
                        .hold(wait.min(self.policy.max_rate_limit_wait))
                        .await;
                }
                alpaca::parse_page(&reply.body, symbol).map_err(|e| Failure {
                    reason: e.to_string(),
                    // A truncated or garbled body is usually a transient fault of the way.
                    retryable: true,
                    rate_limit_wait: None,
                })
            }
            429 => Err(Failure {
                reason: "429 rate limited".to_owned(),
                retryable: true,
                // No usable header: back off by the policy alone.
                rate_limit_wait: Some(wait.unwrap_or(self.policy.base_delay)),
            }),
            status => Err(Failure {
                reason: format!("HTTP {status}: {}", snippet(&reply.body)),
                retryable: status >= 500 || status == 408,
                rate_limit_wait: None,
            }),
        }
    }

    /// Bars of `[start, end]` in `sort` order, following pages until `want` bars or the end.
    async fn bars(
        &self,
        series: &str,
        mut request: PageRequest,
        want: usize,
    ) -> Result<Vec<Bar>, MarketDataError> {
        let mut out = Vec::new();
        for _ in 0..self.policy.max_pages.max(1) {
            request.limit = want
                .saturating_sub(out.len())
                .clamp(1, alpaca::MAX_PAGE_LIMIT);
            let page = self.page(series, &request).await?;
            out.extend(page.bars);
            match page.next_page_token {
                Some(token) if out.len() < want => request.page_token = Some(token),
                _ => return Ok(out),
            }
        }
        tracing::warn!(%series, pages = self.policy.max_pages, "market data: page limit reached; serving what was read");
        Ok(out)
    }

    /// Closed, valid, ordered bars, with corrections noted.
    fn serve(&self, series: &str, timeframe: Timeframe, now: i64, bars: Vec<Bar>) -> Vec<Bar> {
        let (bars, dropped) = alpaca::closed_series(bars, timeframe, now);
        self.stats
            .forming_dropped
            .fetch_add(dropped.forming as u64, Ordering::Relaxed);
        self.stats
            .invalid_dropped
            .fetch_add(dropped.invalid as u64, Ordering::Relaxed);
        if dropped.invalid > 0 {
            tracing::warn!(%series, invalid = dropped.invalid, "market data: invalid bars left out");
        }
        let corrected = match self.corrections.lock() {
            Ok(mut c) => c.observe(series, &bars),
            Err(p) => p.into_inner().observe(series, &bars),
        };
        if !corrected.is_empty() {
            tracing::warn!(%series, times = ?corrected, "market data: late correction of bars already served; they are not evaluated again");
        }
        bars
    }

    fn request(
        ticker: &str,
        timeframe: Timeframe,
        start: i64,
        end: i64,
        sort: Sort,
    ) -> PageRequest {
        let (class, symbol) = alpaca::instrument(ticker);
        PageRequest {
            class,
            symbol,
            timeframe,
            start,
            end,
            limit: 1,
            sort,
            page_token: None,
        }
    }

    /// The most recent `count` bars opened at or before `end` and closed by `now`.
    async fn latest(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
        end: i64,
        count: usize,
    ) -> Result<Vec<Bar>, MarketDataError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let series = format!("{ticker}_{timeframe}");
        let (class, _) = alpaca::instrument(ticker);
        let start = end.saturating_sub(alpaca::lookback_seconds(class, timeframe, count));
        // One more than asked: the newest may still be forming.
        let raw = self
            .bars(
                &series,
                Self::request(ticker, timeframe, start, end, Sort::Desc),
                count.saturating_add(1),
            )
            .await?;
        let mut bars = self.serve(&series, timeframe, now, raw);
        bars.retain(|b| b.time <= end);
        let skip = bars.len().saturating_sub(count);
        Ok(bars.split_off(skip))
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[async_trait]
impl MarketData for AlpacaMarketData {
    async fn closed_bars(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
        count: usize,
    ) -> Result<Vec<Bar>, MarketDataError> {
        self.latest(ticker, timeframe, now, now, count).await
    }

    async fn closed_bars_after(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
        after: i64,
        history: usize,
        count: usize,
    ) -> Result<Vec<Bar>, MarketDataError> {
        let mut bars = self
            .latest(ticker, timeframe, now, after.min(now), history)
            .await?;
        if count > 0 && after < now {
            let series = format!("{ticker}_{timeframe}");
            let raw = self
                .bars(
                    &series,
                    Self::request(ticker, timeframe, after.saturating_add(1), now, Sort::Asc),
                    count.saturating_add(1),
                )
                .await?;
            let mut new = self.serve(&series, timeframe, now, raw);
            new.retain(|b| b.time > after);
            new.truncate(count);
            bars.extend(new);
        }
        Ok(bars)
    }
}

impl AssetClass {
    /// `stock` or `crypto`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetClass::Stock => "stock",
            AssetClass::Crypto => "crypto",
        }
    }
}
