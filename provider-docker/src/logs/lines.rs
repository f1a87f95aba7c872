//! A container's output as lines: the Docker logs API (stdout and stderr, with timestamps),
//! its frames joined and split into whole lines.

use std::collections::VecDeque;
use std::pin::Pin;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::{Stream, StreamExt};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One line of a container's output.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Line {
    pub(super) at: OffsetDateTime,
    pub(super) timestamp: String,
    pub(super) text: String,
}

pub(super) type Lines = Pin<Box<dyn Stream<Item = Line> + Send>>;

/// A container's stdout and stderr as lines, from the Docker logs API with timestamps:
/// the last `tail` lines (all when None), at or after `since`, then new ones with `follow`.
pub(super) fn container_lines(
    docker: &Docker,
    id: &str,
    tail: Option<u64>,
    since: Option<OffsetDateTime>,
    follow: bool,
) -> Lines {
    let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
    // The engine takes whole seconds; finer filtering happens here.
    let since_secs = since.map_or(0, |t| {
        i32::try_from(t.unix_timestamp().max(0)).unwrap_or(i32::MAX)
    });
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .follow(follow)
        .since(since_secs)
        .tail(&tail)
        .build();
    let frames = docker.logs(id, Some(options));
    let state = Splitter {
        frames: Box::pin(frames),
        partial: [None, None],
        ready: VecDeque::new(),
        done: false,
    };
    let lines = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(line) = s.ready.pop_front() {
                return Some((line, s));
            }
            if s.done {
                return None;
            }
            match s.frames.next().await {
                Some(Ok(frame)) => s.push(frame),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "container log stream ended");
                    s.finish();
                }
                None => s.finish(),
            }
        }
    });
    Box::pin(lines.filter(move |l| std::future::ready(since.is_none_or(|s| l.at >= s))))
}

pub(super) type Frames =
    Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// Turns timestamped log frames into whole lines. The engine sends one frame per line, and a
/// line longer than its buffer as several frames without a newline until the last one.
pub(super) struct Splitter {
    pub(super) frames: Frames,
    /// An unfinished line per stream (stdout, stderr): its first timestamp and text so far.
    pub(super) partial: [Option<(OffsetDateTime, String, String)>; 2],
    pub(super) ready: VecDeque<Line>,
    pub(super) done: bool,
}

impl Splitter {
    pub(super) fn push(&mut self, frame: LogOutput) {
        let (slot, bytes) = match frame {
            LogOutput::StdOut { message } | LogOutput::Console { message } => (0, message),
            LogOutput::StdErr { message } => (1, message),
            LogOutput::StdIn { .. } => return,
        };
        let frame = String::from_utf8_lossy(&bytes);
        let (at, timestamp, text) = match frame.split_once(' ') {
            Some((ts, rest)) => match OffsetDateTime::parse(ts, &Rfc3339) {
                Ok(at) => (at, ts.to_string(), rest),
                Err(_) => now_stamped(&frame),
            },
            None => now_stamped(&frame),
        };
        for piece in text.split_inclusive('\n') {
            let (at, timestamp, mut whole) = match self.partial[slot].take() {
                Some((at, ts, before)) => (at, ts, before),
                None => (at, timestamp.clone(), String::new()),
            };
            whole.push_str(piece);
            if whole.ends_with('\n') {
                whole.pop();
                if whole.ends_with('\r') {
                    whole.pop();
                }
                self.ready.push_back(Line {
                    at,
                    timestamp,
                    text: whole,
                });
            } else {
                self.partial[slot] = Some((at, timestamp, whole));
            }
        }
    }

    pub(super) fn finish(&mut self) {
        self.done = true;
        let mut rest: Vec<Line> = self
            .partial
            .iter_mut()
            .filter_map(Option::take)
            .map(|(at, timestamp, text)| Line {
                at,
                timestamp,
                text,
            })
            .collect();
        rest.sort_by_key(|l| l.at);
        self.ready.extend(rest);
    }
}

fn now_stamped(frame: &str) -> (OffsetDateTime, String, &str) {
    let at = OffsetDateTime::now_utc();
    let ts = at.format(&Rfc3339).unwrap_or_default();
    (at, ts, frame)
}
