//! `roomcast bots` flags, their parsers, and the checks that turn them into a swarm
//! configuration (every failure here is a usage error: exit status 2).
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use roomcast_bots::{
    expected_tracks_in_room, BotConfig, BotPlan, BotRole, SwarmConfig, TokenMinter, VideoCodec,
};
use roomcast_protocol::{Quality, Role};
use serde::Serialize;

/// Start headless bots against a running server and measure what they receive.
#[derive(Debug, Clone, Args)]
pub struct BotsArgs {
    /// The server's signaling WebSocket; several comma-separated (the nodes of a cluster)
    /// spread the bots over them, round-robin.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,

    /// Room to join; with --rooms N the rooms are NAME-0 .. NAME-(N-1).
    #[arg(long, value_name = "NAME", default_value = "load")]
    pub room: String,

    /// Spread the bots round-robin over this many rooms.
    #[arg(long, value_name = "N", value_parser = parse_count, allow_hyphen_values = true)]
    pub rooms: Option<usize>,

    /// Bots that publish audio and video.
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_count, allow_hyphen_values = true)]
    pub publishers: usize,

    /// Bots that publish audio only.
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_count, allow_hyphen_values = true)]
    pub audio_publishers: usize,

    /// Bots that publish nothing and receive everything.
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_count, allow_hyphen_values = true)]
    pub subscribers: usize,

    /// How long to measure once every bot has joined and the tracks arrived (or the timeout
    /// passed): `30` (seconds), `10s`, `1m`, `1m30s`.
    #[arg(long, default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub duration: Duration,

    /// Joins started per second (at most 16 are in flight at once); `inf` for no pacing.
    #[arg(long, value_name = "PER_SECOND", default_value = "10", value_parser = parse_join_rate, allow_hyphen_values = true)]
    pub join_rate: f64,

    /// Publishers send their video as three simulcast layers: rids q, h, f (320x180,
    /// 640x360, 1280x720).
    #[arg(long, overrides_with = "no_simulcast")]
    pub simulcast: bool,

    /// Publish one layer per video track (the default).
    #[arg(long, overrides_with = "simulcast")]
    pub no_simulcast: bool,

    /// Quality the bots ask for (`set_quality`) on every video track they receive.
    #[arg(long, value_enum)]
    pub quality: Option<QualityArg>,

    /// Video codec the publishers send.
    #[arg(long, value_enum, default_value = "vp8")]
    pub codec: CodecArg,

    /// Token sent in every `join`.
    #[arg(long, conflicts_with = "jwt_secret")]
    pub token: Option<String>,

    /// Mint one HS256 JWT per bot (claims room, name, role, exp) with this secret.
    #[arg(long, value_name = "SECRET")]
    pub jwt_secret: Option<String>,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// After measuring, N join/leave cycles of one more bot into the first room.
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_count, allow_hyphen_values = true)]
    pub churn: usize,

    /// Bound on each join, on waiting for the tracks, and on leaving.
    #[arg(long, default_value = "20s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Duration,

    /// Where the media loops are (made by media/make-loops.sh) [default: the repository's media/].
    #[arg(long, value_name = "DIR")]
    pub media_dir: Option<PathBuf>,

    /// No progress display (errors and the final report only).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityArg {
    Low,
    Medium,
    High,
}

impl From<QualityArg> for Quality {
    fn from(q: QualityArg) -> Quality {
        match q {
            QualityArg::Low => Quality::Low,
            QualityArg::Medium => Quality::Medium,
            QualityArg::High => Quality::High,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecArg {
    Vp8,
    H264,
}

impl From<CodecArg> for VideoCodec {
    fn from(c: CodecArg) -> VideoCodec {
        match c {
            CodecArg::Vp8 => VideoCodec::Vp8,
            CodecArg::H264 => VideoCodec::H264,
        }
    }
}

/// The settings a run used, as written into the JSON report (secrets left out).
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    pub url: String,
    pub rooms: Vec<String>,
    pub publishers: usize,
    pub audio_publishers: usize,
    pub subscribers: usize,
    pub duration_secs: f64,
    pub join_rate: f64,
    pub max_concurrent_joins: usize,
    pub simulcast: bool,
    pub quality: Option<QualityArg>,
    pub codec: CodecArg,
    /// `none`, `token` or `jwt`.
    pub auth: &'static str,
    pub churn: usize,
    pub timeout_secs: f64,
    pub media_dir: PathBuf,
}

/// A bare number is seconds (`30`, `2.5`); anything else is humantime (`10s`, `1m30s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err("must be positive".to_owned());
    }
    let duration = match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() => {
            Duration::try_from_secs_f64(secs).map_err(|_| "must be positive".to_owned())?
        }
        Ok(_) => return Err("must be a finite number of seconds".to_owned()),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("{e} (write e.g. 30, 10s, 1m or 1m30s)"))?,
    };
    if duration.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(duration)
}

pub fn parse_join_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate > 0.0 => Ok(rate),
        Ok(_) => Err("must be more than zero joins per second".to_owned()),
        Err(_) => Err("must be a number of joins per second, e.g. 10 or 2.5".to_owned()),
    }
}

pub fn parse_count(text: &str) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .map_err(|_| "must be a whole number, 0 or more".to_owned())
}

impl BotsArgs {
    pub fn rooms(&self) -> Vec<String> {
        match self.rooms {
            None => vec![self.room.clone()],
            Some(n) => (0..n).map(|i| format!("{}-{i}", self.room)).collect(),
        }
    }

    fn media_dir(&self) -> PathBuf {
        self.media_dir
            .clone()
            .unwrap_or_else(BotConfig::default_media_dir)
    }

    /// Checks everything that can be checked before touching the network. `Err` is one line
    /// for the user, without the `error: ` prefix.
    pub fn swarm_config(&self) -> Result<SwarmConfig, String> {
        let url = self.url.trim();
        for one in url.split(',').map(str::trim) {
            if !(one.starts_with("ws://") || one.starts_with("wss://")) {
                return Err(format!(
                    "--url must be ws:// or wss:// URLs such as ws://127.0.0.1:8080/ws \
                     (comma-separated for several), got {one:?}"
                ));
            }
        }
        if self.rooms == Some(0) {
            return Err("--rooms must be at least 1".to_owned());
        }
        let total = self.publishers + self.audio_publishers + self.subscribers;
        if total == 0 {
            return Err(
                "no bots: give --publishers, --audio-publishers and/or --subscribers".to_owned(),
            );
        }
        // Without bot publishers the subscribers watch whatever the rooms list (an encoder
        // over WHIP, a presenter in a browser): the expected tracks are those.
        let watching = self.publishers + self.audio_publishers == 0;
        let mut config = SwarmConfig::new(url);
        config.rooms = self.rooms();
        config.publishers = self.publishers;
        config.audio_publishers = self.audio_publishers;
        config.subscribers = self.subscribers;
        config.join_rate = self.join_rate;
        config.codec = self.codec.into();
        config.simulcast = self.simulcast;
        config.token = self.token.clone();
        config.quality = self.quality.map(Quality::from);
        config.media_dir = self.media_dir();
        config.join_timeout = self.timeout;
        if !watching && nothing_to_receive(&config.plan()) {
            return Err(
                "nothing to measure: no room has a publisher and another bot to \
                        receive it (add bots or use fewer --rooms)"
                    .to_owned(),
            );
        }
        check_media(&config)?;
        if let Some(path) = &self.json {
            check_writable(path)?;
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.is_empty() {
                return Err("--jwt-secret must not be empty".to_owned());
            }
            config.token_minter = Some(jwt_minter(secret.clone(), self.token_lifetime()));
        }
        Ok(config)
    }

    /// Long enough for the whole run, whatever happens.
    fn token_lifetime(&self) -> Duration {
        self.duration + self.timeout * 4 + Duration::from_secs(3600)
    }

    pub fn run_config(&self, config: &SwarmConfig) -> RunConfig {
        RunConfig {
            url: config.url.clone(),
            rooms: config.rooms.clone(),
            publishers: config.publishers,
            audio_publishers: config.audio_publishers,
            subscribers: config.subscribers,
            duration_secs: self.duration.as_secs_f64(),
            join_rate: self.join_rate,
            max_concurrent_joins: config.max_concurrent_joins,
            simulcast: config.simulcast,
            quality: self.quality,
            codec: self.codec,
            auth: match (&self.token, &self.jwt_secret) {
                (_, Some(_)) => "jwt",
                (Some(_), None) => "token",
                (None, None) => "none",
            },
            churn: self.churn,
            timeout_secs: self.timeout.as_secs_f64(),
            media_dir: std::fs::canonicalize(&config.media_dir)
                .unwrap_or_else(|_| config.media_dir.clone()),
        }
    }
}

/// No room would have a track to receive even if every bot joined.
fn nothing_to_receive(plans: &[BotPlan]) -> bool {
    let mut rooms: std::collections::BTreeMap<&str, Vec<BotRole>> = Default::default();
    for plan in plans {
        rooms.entry(&plan.room).or_default().push(plan.role);
    }
    rooms
        .values()
        .all(|roles| expected_tracks_in_room(roles) == 0)
}

/// The loop files the publishers will read, so a missing one fails before any join.
fn check_media(config: &SwarmConfig) -> Result<(), String> {
    let video = (config.publishers > 0).then_some(config.codec);
    let publisher = BotConfig::new(&config.url, "", "")
        .with_publish(true, video)
        .with_simulcast(config.simulcast)
        .with_media_dir(&config.media_dir);
    for path in publisher.media_files() {
        if !path.is_file() {
            return Err(format!(
                "media loop {} not found (run media/make-loops.sh, or point --media-dir at the \
                 loops)",
                path.display()
            ));
        }
    }
    Ok(())
}

fn check_writable(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "--json {}: directory {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    if path.is_dir() {
        return Err(format!("--json {}: is a directory", path.display()));
    }
    Ok(())
}

#[derive(Serialize)]
struct Claims<'a> {
    room: &'a str,
    name: &'a str,
    role: Role,
    exp: u64,
}

/// One HS256 token per bot with the claims the server will check: `room`, `name`, `role`,
/// `exp`.
fn jwt_minter(secret: String, lifetime: Duration) -> TokenMinter {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    TokenMinter::new(move |plan: &BotPlan| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = Claims {
            room: &plan.room,
            name: &plan.name,
            role: plan.role.protocol_role(),
            exp: (now + lifetime).as_secs(),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &key,
        )
        .map_err(|e| format!("cannot sign the JWT: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bots: BotsArgs,
    }

    fn parse(args: &[&str]) -> Result<BotsArgs, clap::Error> {
        let mut all = vec!["bots"];
        all.extend(args);
        Cli::try_parse_from(all).map(|cli| cli.bots)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("-5s"), Err("must be positive".to_owned()));
        assert_eq!(parse_duration("-5"), Err("must be positive".to_owned()));
        assert_eq!(
            parse_duration("0"),
            Err("must be more than zero".to_owned())
        );
        assert_eq!(
            parse_duration("0s"),
            Err("must be more than zero".to_owned())
        );
        assert!(parse_duration("soon").unwrap_err().contains("e.g. 30"));
        assert!(parse_duration("inf").is_err());
    }

    #[test]
    fn join_rates() {
        assert_eq!(parse_join_rate("2.5"), Ok(2.5));
        assert_eq!(parse_join_rate("inf"), Ok(f64::INFINITY));
        assert!(parse_join_rate("0").is_err());
        assert!(parse_join_rate("-1").is_err());
        assert!(parse_join_rate("NaN").is_err());
        assert!(parse_join_rate("fast").is_err());
    }

    #[test]
    fn rooms_and_roles() {
        let args = parse(&["--publishers", "2", "--subscribers", "3"]).unwrap();
        assert_eq!(args.rooms(), ["load"]);
        let config = args.swarm_config().unwrap();
        assert_eq!(config.bots(), 5);
        let args = parse(&["--room", "x", "--rooms", "3", "--publishers", "6"]).unwrap();
        assert_eq!(args.rooms(), ["x-0", "x-1", "x-2"]);
    }

    #[test]
    fn several_urls_spread_the_bots_round_robin() {
        let config = parse(&["--publishers", "2", "--url", "ws://a/ws, ws://b/ws"])
            .unwrap()
            .swarm_config()
            .unwrap();
        let urls: Vec<String> = (0..3).map(|i| config.url_for(i)).collect();
        assert_eq!(urls, ["ws://a/ws", "ws://b/ws", "ws://a/ws"]);
        let err = parse(&["--publishers", "2", "--url", "ws://a/ws,http://b/ws"])
            .unwrap()
            .swarm_config()
            .unwrap_err();
        assert!(err.contains("http://b/ws"), "{err}");
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        let err = |args: &[&str]| parse(args).unwrap().swarm_config().unwrap_err();
        assert!(err(&[]).contains("no bots"));
        // Subscribers alone watch what the rooms list (a WHIP encoder, a browser).
        assert!(parse(&["--subscribers", "5"])
            .unwrap()
            .swarm_config()
            .is_ok());
        assert!(err(&["--publishers", "1"]).contains("nothing to measure"));
        assert!(
            err(&["--publishers", "1", "--subscribers", "1", "--rooms", "2"])
                .contains("nothing to measure")
        );
        assert!(err(&["--publishers", "2", "--url", "http://x/ws"]).contains("ws://"));
        assert!(err(&["--publishers", "2", "--rooms", "0"]).contains("--rooms"));
        assert!(
            err(&["--publishers", "2", "--media-dir", "/nonexistent"]).contains("make-loops.sh")
        );
        assert!(
            err(&["--publishers", "2", "--json", "/nonexistent/x.json"]).contains("does not exist")
        );
        // `--no-simulcast` after `--simulcast` wins.
        let last_wins = parse(&["--publishers", "2", "--simulcast", "--no-simulcast"]).unwrap();
        assert!(!last_wins.swarm_config().unwrap().simulcast);
        // Parse errors are clap's (exit status 2 as well).
        assert!(parse(&["--publishers", "-1"]).is_err());
        assert!(parse(&["--duration", "-5s"]).is_err());
        assert!(parse(&["--join-rate", "0"]).is_err());
        assert!(parse(&["--token", "t", "--jwt-secret", "s"]).is_err());
        assert!(parse(&["--quality", "ultra"]).is_err());
    }

    #[test]
    fn simulcast_needs_every_layer_loop() {
        let args = parse(&["--publishers", "2", "--simulcast", "--codec", "h264"]).unwrap();
        let config = args.swarm_config().unwrap();
        assert!(config.simulcast);
        assert!(args.run_config(&config).simulcast);
        let dir = std::env::temp_dir().join(format!("roomcast-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let media = BotConfig::default_media_dir();
        for file in ["opus-48k.ogg", "opus-48k.levels", "h264-640x360.h264"] {
            std::fs::copy(media.join(file), dir.join(file)).unwrap();
        }
        let dir_arg = dir.to_str().unwrap();
        let with = |extra: &[&str]| {
            let mut all = vec![
                "--publishers",
                "2",
                "--codec",
                "h264",
                "--media-dir",
                dir_arg,
            ];
            all.extend(extra);
            parse(&all).unwrap().swarm_config()
        };
        assert!(with(&[]).is_ok(), "one layer needs the 640x360 loop only");
        let err = with(&["--simulcast"]).unwrap_err();
        assert!(err.contains("h264-320x180.h264"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn jwts_carry_room_name_role_and_expiry() {
        let minter = jwt_minter("s3cret".to_owned(), Duration::from_secs(600));
        let plan = BotPlan {
            index: 3,
            name: "bot-sub-0".into(),
            room: "load-1".into(),
            role: BotRole::Subscriber,
        };
        let token = minter.mint(&plan).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"s3cret"),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["room"], "load-1");
        assert_eq!(data.claims["name"], "bot-sub-0");
        assert_eq!(data.claims["role"], "audience");
        let exp = data.claims["exp"].as_u64().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!((now + 590..=now + 610).contains(&exp));
    }
}
