//! The command line: every command, its flags and an example in its `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The operator's tool for a deployed tradeflow stack (AWS, LocalStack or the local emulator).
///
/// AWS settings come from the standard chain (AWS_PROFILE, AWS_REGION, credentials,
/// AWS_ENDPOINT_URL); the stack's tables and queues from its CloudFormation outputs.
#[derive(Debug, Parser)]
#[command(name = "tradeflow", version, propagate_version = true)]
#[command(
    after_help = "Example:\n  TRADEFLOW_STACK=tradeflow-local tradeflow executions list --status FAILED"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// CloudFormation stack name (local/deploy-stack.sh <stage> creates tradeflow-<stage>)
    #[arg(long, global = true, env = "TRADEFLOW_STACK")]
    pub stack: Option<String>,
    /// Print JSON instead of tables (one document; `tail` commands print one JSON object a line)
    #[arg(long, global = true)]
    pub json: bool,
    /// Answer yes to confirmations (required for destructive commands when not on a terminal)
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, change, list and remove pipelines
    #[command(
        subcommand,
        after_help = "Example:\n  tradeflow pipelines create my-pipeline.yaml && tradeflow pipelines list"
    )]
    Pipelines(PipelinesCmd),
    /// Send signals to the chain and watch every signal published
    #[command(
        subcommand,
        after_help = "Example:\n  tradeflow signals send --type rsi_oversold --ticker AAPL --confidence 80 --timeframe 5"
    )]
    Signals(SignalsCmd),
    /// List, inspect and follow pipeline executions
    #[command(
        subcommand,
        after_help = "Example:\n  tradeflow executions list --status FAILED"
    )]
    Executions(ExecutionsCmd),
    /// List paper orders
    #[command(
        subcommand,
        after_help = "Example:\n  tradeflow orders list --pipeline pl-momentum"
    )]
    Orders(OrdersCmd),
    /// List the (pipeline, ticker) leases: which are held, by which execution, until when
    #[command(subcommand, after_help = "Example:\n  tradeflow leases list --held")]
    Leases(LeasesCmd),
    /// Inspect and redrive the dead-letter queues
    #[command(
        subcommand,
        after_help = "Example:\n  tradeflow dlq list --queue signals"
    )]
    Dlq(DlqCmd),
    /// Replay market data through the production generator, dispatcher and executor code
    #[command(
        after_help = "Examples:\n  tradeflow backtest --csv market-data/ --pipelines local/seed/pipelines.json\n  tradeflow backtest --synthetic --from 2026-01-05 --to 2026-01-06 --tickers AAPL,MSFT --json\n  tradeflow backtest --synthetic --from 2026-01-05 --to 2026-01-05T06:00:00Z --tickers AAPL --emulator"
    )]
    Backtest(BacktestArgs),
    /// Render the Grafana dashboards as one self-contained HTML page
    #[command(
        subcommand,
        after_help = "Example:\n  tradeflow dashboard render --prometheus http://127.0.0.1:9090 --out dashboard.html"
    )]
    Dashboard(DashboardCmd),
}

#[derive(Debug, Subcommand)]
pub enum PipelinesCmd {
    /// Create pipelines from a YAML or JSON file (one pipeline or a list); fails if one exists
    #[command(after_help = "Example:\n  tradeflow pipelines create my-pipeline.yaml")]
    Create(PipelineFileArgs),
    /// Replace existing pipelines from a YAML or JSON file (one pipeline or a list)
    #[command(after_help = "Example:\n  tradeflow pipelines update my-pipeline.yaml")]
    Update(PipelineFileArgs),
    /// List every pipeline
    #[command(after_help = "Example:\n  tradeflow pipelines list --user u-alice")]
    List {
        /// Only this user's pipelines
        #[arg(long)]
        user: Option<String>,
    },
    /// Show one pipeline (YAML, or JSON with --json: either can be edited and passed to `update`)
    #[command(after_help = "Example:\n  tradeflow pipelines show pl-momentum-aapl > p.yaml")]
    Show { pipeline_id: String },
    /// Let a pipeline be triggered by signals again
    #[command(after_help = "Example:\n  tradeflow pipelines enable pl-momentum-aapl")]
    Enable { pipeline_id: String },
    /// Stop a pipeline from being triggered (dispatchers see it within their cache TTL)
    #[command(after_help = "Example:\n  tradeflow pipelines disable pl-momentum-aapl")]
    Disable { pipeline_id: String },
    /// Delete a pipeline (asks first on a terminal; --yes otherwise)
    #[command(after_help = "Example:\n  tradeflow pipelines delete pl-momentum-aapl --yes")]
    Delete { pipeline_id: String },
}

#[derive(Debug, Args)]
pub struct PipelineFileArgs {
    /// A .yaml/.yml or .json file: one pipeline, or a list of them
    pub file: PathBuf,
    /// Validate only: write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum SignalsCmd {
    /// Send one signal (from flags) or the signals of a JSON file, validated as the dispatcher will
    /// (published to the stack's signals topic, so tails see it; straight to the signals queue on
    /// a stack without one)
    #[command(
        after_help = "Examples:\n  tradeflow signals send --type rsi_oversold --ticker AAPL --direction BULLISH --confidence 80 --timeframe 5\n  tradeflow signals send --file signals.json"
    )]
    Send(SendArgs),
    /// Follow every signal published to the stack's signals topic, live: the generator's and
    /// `signals send`'s, whether or not a pipeline matches it (until Ctrl-C, --count or --for)
    #[command(after_help = TAIL_HELP)]
    Tail(TailArgs),
}

const TAIL_HELP: &str = "Examples:
  tradeflow signals tail --ticker AAPL --type rsi_oversold
  tradeflow --json signals tail --count 5 --for 10m
  tradeflow signals tail --cleanup

How it works: the tail creates a temporary SQS queue (tradeflow-tail-..., tagged with the stack,
messages kept 5 minutes), lets the signals topic send to it and subscribes it with raw delivery,
so it receives every signal exactly as the signals queue does, without taking any from the
dispatcher. On exit, Ctrl-C or SIGTERM it unsubscribes and deletes the queue. If it is killed
(kill -9, a lost machine) the queue and its subscription stay; `signals tail --cleanup` removes
those of this stack whose tail has not been seen for 5 minutes (a running tail marks its queue
every minute), or find them with `aws sqs list-queues --queue-name-prefix tradeflow-tail-`.";

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only signals of this type
    #[arg(long = "type")]
    pub signal_type: Option<String>,
    /// Only signals for this ticker (one of the signal's tickers)
    #[arg(long)]
    pub ticker: Option<String>,
    /// Stop after printing this many signals
    #[arg(long)]
    pub count: Option<usize>,
    /// Stop after this long: seconds, or a number with s, m or h (e.g. 90, 30s, 10m)
    #[arg(long = "for", value_parser = parse_duration)]
    pub for_duration: Option<std::time::Duration>,
    /// Remove the queues and subscriptions of tails of this stack that were killed, and exit
    #[arg(long, conflicts_with_all = ["signal_type", "ticker", "count", "for_duration"])]
    pub cleanup: bool,
}

/// `90`, `90s`, `1.5m`, `2h`: a positive duration.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let scale = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unit {other:?}: use s, m or h (e.g. 30s, 10m)")),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: expected e.g. 90, 30s, 10m or 2h"))?;
    let secs = value * scale;
    if !(secs.is_finite() && secs > 0.0 && secs <= 31_536_000.0) {
        return Err(format!("{text:?}: must be positive and at most a year"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// A JSON file with one signal object or a list of them (docs/signal-format.md)
    #[arg(long, conflicts_with_all = ["signal_type", "ticker"])]
    pub file: Option<PathBuf>,
    /// Signal type, e.g. rsi_oversold (docs/signal-format.md lists them)
    #[arg(long = "type", required_unless_present = "file")]
    pub signal_type: Option<String>,
    /// Ticker (repeat for several tickers, each with the same direction and confidence)
    #[arg(long, required_unless_present = "file")]
    pub ticker: Vec<String>,
    /// BULLISH, BEARISH or NEUTRAL
    #[arg(long, default_value = "BULLISH")]
    pub direction: String,
    /// 0 to 100
    #[arg(long, default_value_t = 75.0)]
    pub confidence: f64,
    /// Timeframe: 1, 5, 15, 60, 240 or D
    #[arg(long)]
    pub timeframe: Option<String>,
    /// The signal's source
    #[arg(long, default_value = "tradeflow-cli")]
    pub source: String,
    /// Signal id (default: a new one)
    #[arg(long)]
    pub id: Option<String>,
    /// Unix seconds (default: now)
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// Validate only: send nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args, Clone)]
pub struct FollowArgs {
    /// Seconds between polls
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Stop after this many seconds (default: follow until Ctrl-C)
    #[arg(long = "for")]
    pub for_secs: Option<f64>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ExecutionFilter {
    /// Only this pipeline's executions (read through the table's by-pipeline index)
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Only this user's
    #[arg(long)]
    pub user: Option<String>,
    /// Only this ticker's
    #[arg(long)]
    pub ticker: Option<String>,
    /// Only this status: PENDING, RUNNING, COMPLETED, FAILED or SKIPPED
    #[arg(long)]
    pub status: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExecutionsCmd {
    /// List executions, newest first
    #[command(
        after_help = "Example:\n  tradeflow executions list --pipeline pl-momentum-aapl --status COMPLETED --limit 50"
    )]
    List {
        #[command(flatten)]
        filter: ExecutionFilter,
        /// At most this many (0: all)
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show one execution with its signal and steps
    #[command(after_help = "Example:\n  tradeflow executions show exe-3f2a...")]
    Show { execution_id: String },
    /// Follow executions as they are created and change status, until Ctrl-C
    #[command(after_help = "Example:\n  tradeflow executions tail --ticker AAPL")]
    Tail {
        #[command(flatten)]
        filter: ExecutionFilter,
        #[command(flatten)]
        follow: FollowArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrdersCmd {
    /// List paper orders, newest first
    #[command(after_help = "Example:\n  tradeflow orders list --ticker AAPL")]
    List {
        #[arg(long)]
        pipeline: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        ticker: Option<String>,
        /// At most this many (0: all)
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum LeasesCmd {
    /// List leases (expired ones too: DynamoDB deletes them lazily)
    #[command(after_help = "Example:\n  tradeflow leases list --held")]
    List {
        /// Only leases that are held now (not expired)
        #[arg(long)]
        held: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DlqName {
    Signals,
    Executions,
}

#[derive(Debug, Subcommand)]
pub enum DlqCmd {
    /// List the messages of the dead-letter queues with why they were rejected
    #[command(after_help = "Example:\n  tradeflow dlq list --queue executions")]
    List {
        /// One DLQ (default: both)
        #[arg(long, value_enum)]
        queue: Option<DlqName>,
    },
    /// Move messages back to their source queue (selected ids, or --all)
    #[command(
        after_help = "Examples:\n  tradeflow dlq redrive --queue signals --id 5b1c... --dry-run\n  tradeflow dlq redrive --queue executions --all --yes"
    )]
    Redrive {
        /// The DLQ to move messages out of
        #[arg(long, value_enum)]
        queue: DlqName,
        /// Message id to move (repeat); see `dlq list`
        #[arg(long = "id", required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Move every message of the queue (asks first on a terminal; --yes otherwise)
        #[arg(long)]
        all: bool,
        /// Show what would move; move nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Directory of <TICKER>_<TIMEFRAME>.csv files (timestamp,open,high,low,close,volume)
    #[arg(
        long,
        conflicts_with = "synthetic",
        required_unless_present = "synthetic"
    )]
    pub csv: Option<PathBuf>,
    /// Use the synthetic feed (deterministic) instead of CSV files
    #[arg(long)]
    pub synthetic: bool,
    /// Seed of the synthetic feed
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Start (YYYY-MM-DD or RFC 3339); default: the first CSV bar
    #[arg(long)]
    pub from: Option<String>,
    /// End (YYYY-MM-DD or RFC 3339, exclusive); default: the last CSV bar's close
    #[arg(long)]
    pub to: Option<String>,
    /// Tickers to scan (default: every CSV series' ticker; required with --synthetic)
    #[arg(long, value_delimiter = ',')]
    pub tickers: Vec<String>,
    /// Timeframes to scan (default: the CSV series', or 5 with --synthetic)
    #[arg(long, value_delimiter = ',')]
    pub timeframes: Vec<String>,
    /// Pipelines (YAML or JSON, one or a list), read as `pipelines create` reads them
    /// (default: the sample pipelines of local/seed/pipelines.json, compiled in)
    #[arg(long)]
    pub pipelines: Option<PathBuf>,
    /// Simulated seconds between two scheduled scans (default: the smallest timeframe)
    #[arg(long)]
    pub step_secs: Option<i64>,
    /// Run on a throwaway stack deployed to the emulator at AWS_ENDPOINT_URL instead of in this
    /// process: the functions' handlers with their DynamoDB and SQS adapters, as the demo runs
    /// them (slower; the stack is deleted afterwards). Never deploys to AWS.
    #[arg(long)]
    pub emulator: bool,
}

#[derive(Debug, Subcommand)]
pub enum DashboardCmd {
    /// Query Prometheus for every panel of the dashboards and write one HTML page (no network needed to view it)
    #[command(
        after_help = "Example:\n  tradeflow dashboard render --prometheus http://127.0.0.1:9090 --since 1h --out dashboard.html"
    )]
    Render(RenderArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Prometheus base URL (its HTTP API)
    #[arg(long, env = "PROMETHEUS_URL", default_value = "http://127.0.0.1:9090")]
    pub prometheus: String,
    /// Directory of Grafana dashboard JSON files (default: the provisioned ones, compiled in)
    #[arg(long)]
    pub dashboards: Option<PathBuf>,
    /// Time range: the last DURATION (e.g. 30m, 6h, 2d)
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// End of the range (Unix seconds or RFC 3339; default: now)
    #[arg(long)]
    pub until: Option<String>,
    /// Output file
    #[arg(long, short = 'o', default_value = "dashboard.html")]
    pub out: PathBuf,
}
