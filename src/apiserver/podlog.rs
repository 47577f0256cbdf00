//! The query of `pods/log` as kube-apiserver reads it (`PodLogOptions`): `container`, `follow`,
//! `previous`, `sinceSeconds`, `sinceTime`, `timestamps`, `tailLines`, `limitBytes` and
//! `insecureSkipTLSVerifyBackend`, checked as Kubernetes checks them, and turned into the
//! agent's query (`since` becomes a Unix time; `limitBytes` is applied by the master).

use chrono::{DateTime, Utc};

use super::streams::parse_bool;
use super::ApiError;

pub const PARAMETERS: [&str; 10] = [
    "container",
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "tailLines",
    "limitBytes",
    "insecureSkipTLSVerifyBackend",
    "pretty",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// From `sinceSeconds` or `sinceTime`: the earliest time to show.
    pub since: Option<DateTime<Utc>>,
}

fn number(name: &str, v: &str, min: i64) -> Result<u64, ApiError> {
    let n: i64 = v.parse().map_err(|_| {
        ApiError::BadRequest(format!("query parameter {name}={v:?} is not an integer"))
    })?;
    if n < min {
        let rule = if min == 0 {
            "must be greater than or equal to 0"
        } else {
            "must be greater than 0"
        };
        return Err(ApiError::BadRequest(format!(
            "{name}: Invalid value: {n}: {rule}"
        )));
    }
    Ok(n as u64)
}

impl LogOptions {
    pub fn parse(raw: Option<&str>, now: DateTime<Utc>) -> Result<LogOptions, ApiError> {
        let mut o = LogOptions::default();
        let (mut since_seconds, mut since_time) = (None, None);
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "container" => o.container = Some(v.into_owned()).filter(|c| !c.is_empty()),
                "follow" => o.follow = parse_bool("follow", &v)?,
                "previous" => o.previous = parse_bool("previous", &v)?,
                "timestamps" => o.timestamps = parse_bool("timestamps", &v)?,
                "tailLines" => o.tail_lines = Some(number("tailLines", &v, 0)?),
                "limitBytes" => o.limit_bytes = Some(number("limitBytes", &v, 1)?),
                "sinceSeconds" => since_seconds = Some(number("sinceSeconds", &v, 1)?),
                "sinceTime" => {
                    let t = DateTime::parse_from_rfc3339(&v).map_err(|e| {
                        ApiError::BadRequest(format!(
                            "query parameter sinceTime={v:?} is not an RFC 3339 time ({e}); \
                             e.g. 2024-01-02T15:04:05Z"
                        ))
                    })?;
                    since_time = Some(t.with_timezone(&Utc));
                }
                // the master always checks the agent's certificate; there is nothing to skip
                "insecureSkipTLSVerifyBackend" => {
                    parse_bool("insecureSkipTLSVerifyBackend", &v)?;
                }
                "pretty" => {}
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "unsupported query parameter {other:?} (supported: {})",
                        PARAMETERS.join(", ")
                    )))
                }
            }
        }
        o.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
                ))
            }
            (Some(s), None) => {
                let s = i64::try_from(s).unwrap_or(i64::MAX).min(100 * 365 * 86_400);
                Some(now - chrono::Duration::seconds(s))
            }
            (None, t) => t,
        };
        Ok(o)
    }

    /// The agent's query for container `container`.
    pub fn agent_query(&self, container: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("container", container);
        let flag = |b: bool| if b { "true" } else { "false" };
        q.append_pair("follow", flag(self.follow));
        q.append_pair("previous", flag(self.previous));
        q.append_pair("timestamps", flag(self.timestamps));
        if let Some(n) = self.tail_lines {
            q.append_pair("tailLines", &n.to_string());
        }
        if let Some(t) = self.since {
            q.append_pair("since", &t.timestamp().max(0).to_string());
        }
        q.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_kubectl_parameter_is_read() {
        let o = LogOptions::parse(
            Some("container=c&follow=true&previous=false&timestamps=1&tailLines=5&limitBytes=10&sinceSeconds=60&insecureSkipTLSVerifyBackend=true"),
            now(),
        )
        .unwrap();
        assert_eq!(o.container.as_deref(), Some("c"));
        assert!(o.follow && !o.previous && o.timestamps);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(10)));
        assert_eq!(o.since, Some(now() - chrono::Duration::seconds(60)));
        assert_eq!(
            o.agent_query("c"),
            format!(
                "container=c&follow=true&previous=false&timestamps=true&tailLines=5&since={}",
                now().timestamp() - 60
            )
        );
        let t = LogOptions::parse(Some("sinceTime=2026-01-02T03:00:00Z"), now()).unwrap();
        assert_eq!(t.since.unwrap().timestamp(), now().timestamp() - 245);
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (q, want) in [
            ("tailLines=-1", "tailLines"),
            ("tailLines=x", "tailLines"),
            ("limitBytes=0", "limitBytes"),
            ("sinceSeconds=0", "sinceSeconds"),
            ("sinceTime=yesterday", "sinceTime"),
            (
                "sinceSeconds=5&sinceTime=2026-01-02T03:00:00Z",
                "at most one",
            ),
            ("follow=maybe", "follow"),
            ("colour=red", "colour"),
        ] {
            let e = LogOptions::parse(Some(q), now()).unwrap_err().to_string();
            assert!(e.contains(want), "{q}: {e}");
        }
        let huge = LogOptions::parse(Some("sinceSeconds=9223372036854775807"), now()).unwrap();
        assert!(huge.since.is_some());
    }
}
