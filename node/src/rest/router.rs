//! Which route a request names, or why it names none: the REST API's grammar in one pure
//! function, so every refusal is unit-tested without a server.
//!
//! Checks go from the coarsest to the finest: a path no route has is 404; a path whose route
//! exists but not with this method is 405 (with the methods it has); then the id in the path
//! (400) and the query (400). Query parameters a route does not document are refused rather than
//! ignored, so a misspelt `?paralellism=4` never silently means the default.

use std::fmt;

use rivulet_core::ids::JobId;
use rivulet_core::limits::PARALLELISM_MAX;

use super::api::parse_job_id;

/// A request the API serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /overview`
    Overview,
    /// `GET /jobs`
    ListJobs,
    /// `POST /jobs[?parallelism=N][&savepoint=PATH]` (PATH percent-encoded)
    SubmitJob { parallelism: Option<u16>, savepoint: Option<String> },
    /// `GET /jobs/{id}`
    Job(JobId),
    /// `POST /jobs/{id}/cancel`
    CancelJob(JobId),
    /// `POST /jobs/{id}/stop`: drain the job.
    StopJob(JobId),
    /// `POST /jobs/{id}/savepoints`: ask for a savepoint (JSON body, optional).
    TriggerSavepoint(JobId),
    /// `GET /jobs/{id}/savepoints/{n}`
    Savepoint(JobId, u64),
    /// `GET /taskmanagers`
    TaskManagers,
}

/// Why a request names no route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// 404: no route has this path.
    NotFound { path: String },
    /// 405: the path's route does not take this method; `allowed` is the `Allow` header's value.
    MethodNotAllowed { method: String, path: String, allowed: &'static str },
    /// 400: the path's job id is not one.
    BadJobId { text: String },
    /// 400: the path's savepoint request number is not one.
    BadSavepoint { text: String },
    /// 400: a query parameter is unknown, repeated or out of range.
    BadQuery { message: String },
}

impl RouteError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            RouteError::NotFound { .. } => 404,
            RouteError::MethodNotAllowed { .. } => 405,
            RouteError::BadJobId { .. } | RouteError::BadSavepoint { .. } | RouteError::BadQuery { .. } => {
                400
            }
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::NotFound { path } => write!(
                f,
                "no route {}; the routes are /overview, /jobs, /jobs/{{id}}, /jobs/{{id}}/cancel, \
                 /jobs/{{id}}/stop, /jobs/{{id}}/savepoints, /jobs/{{id}}/savepoints/{{n}}, /taskmanagers",
                shown(path)
            ),
            RouteError::MethodNotAllowed { method, path, allowed } => {
                write!(f, "{} {} is not served; {} takes {allowed}", shown(method), shown(path), shown(path))
            }
            RouteError::BadJobId { text } => {
                write!(f, "{:?} is not a job id (expected job-N or N, e.g. job-3)", shown(text))
            }
            RouteError::BadSavepoint { text } => {
                write!(f, "{:?} is not a savepoint request number (expected 1, 2, ...)", shown(text))
            }
            RouteError::BadQuery { message } => f.write_str(message),
        }
    }
}

/// The route of `method` on `path` with `query` (the part after `?`, if any).
pub fn route(method: &str, path: &str, query: Option<&str>) -> Result<Route, RouteError> {
    let segments: Vec<&str> = match path.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None => Vec::new(),
    };
    let not_found = || RouteError::NotFound { path: path.to_owned() };
    if segments.is_empty() || segments.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    let allow = |allowed: &'static str| {
        if allowed.split(", ").any(|m| m == method) {
            Ok(())
        } else {
            Err(RouteError::MethodNotAllowed { method: method.to_owned(), path: path.to_owned(), allowed })
        }
    };
    let job_id =
        |text: &str| parse_job_id(text).ok_or_else(|| RouteError::BadJobId { text: text.to_owned() });
    let route = match segments.as_slice() {
        ["overview"] => allow("GET").map(|()| Route::Overview)?,
        ["taskmanagers"] => allow("GET").map(|()| Route::TaskManagers)?,
        ["jobs"] => {
            allow("GET, POST")?;
            if method == "GET" {
                Route::ListJobs
            } else {
                let (parallelism, savepoint) = submit_query(query)?;
                return Ok(Route::SubmitJob { parallelism, savepoint });
            }
        }
        ["jobs", id] => {
            allow("GET")?;
            Route::Job(job_id(id)?)
        }
        ["jobs", id, "cancel"] => {
            allow("POST")?;
            Route::CancelJob(job_id(id)?)
        }
        ["jobs", id, "stop"] => {
            allow("POST")?;
            Route::StopJob(job_id(id)?)
        }
        ["jobs", id, "savepoints"] => {
            allow("POST")?;
            Route::TriggerSavepoint(job_id(id)?)
        }
        ["jobs", id, "savepoints", n] => {
            allow("GET")?;
            let job = job_id(id)?;
            let request = (n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse::<u64>().ok())
                .flatten()
                .filter(|&n| n >= 1)
                .ok_or_else(|| RouteError::BadSavepoint { text: (*n).to_owned() })?;
            Route::Savepoint(job, request)
        }
        _ => return Err(not_found()),
    };
    match query.filter(|q| !q.is_empty()) {
        Some(query) => Err(RouteError::BadQuery {
            message: format!("{} takes no query parameters, got {:?}", shown(path), shown(query)),
        }),
        None => Ok(route),
    }
}

/// `POST /jobs`'s query: at most one `parallelism=N`, N from 1 to [`PARALLELISM_MAX`], and at
/// most one `savepoint=PATH`, percent-encoded.
fn submit_query(query: Option<&str>) -> Result<(Option<u16>, Option<String>), RouteError> {
    let bad = |message: String| RouteError::BadQuery { message };
    let (mut parallelism, mut savepoint) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "savepoint" {
            if savepoint.is_some() {
                return Err(bad("`savepoint` is given twice".to_owned()));
            }
            let path = percent_decode(value).ok_or_else(|| {
                bad(format!("`savepoint` must be a percent-encoded UTF-8 path, got {:?}", shown(value)))
            })?;
            if path.is_empty() {
                return Err(bad("`savepoint` is empty: it takes a savepoint file's path".to_owned()));
            }
            savepoint = Some(path);
            continue;
        }
        if key != "parallelism" {
            return Err(bad(format!(
                "unknown query parameter {:?}; POST /jobs takes only `parallelism` and `savepoint`",
                shown(key)
            )));
        }
        if parallelism.is_some() {
            return Err(bad("`parallelism` is given twice".to_owned()));
        }
        let n = value
            .parse::<u16>()
            .ok()
            .filter(|n| (1..=PARALLELISM_MAX).contains(n) && value.bytes().all(|b| b.is_ascii_digit()));
        match n {
            Some(n) => parallelism = Some(n),
            None => {
                return Err(bad(format!(
                    "`parallelism` must be a number from 1 to {PARALLELISM_MAX}, got {:?}",
                    shown(value)
                )))
            }
        }
    }
    Ok((parallelism, savepoint))
}

/// `%XX` escapes (and `+` for a space) decoded; `None` for a broken escape or bytes that are not
/// UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(b) = input.next() {
        match b {
            b'%' => {
                let hex = [input.next()?, input.next()?];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b'+' => bytes.push(b' '),
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

/// `text` with every byte but unreserved ones (`A-Z a-z 0-9 - . _ ~`) and `/` as `%XX`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Text from a request as an error message quotes it: at most 100 characters, so that a huge
/// path does not make a huge answer.
fn shown(text: &str) -> &str {
    match text.char_indices().nth(100) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_found() {
        assert_eq!(route("GET", "/overview", None), Ok(Route::Overview));
        assert_eq!(route("GET", "/jobs", None), Ok(Route::ListJobs));
        assert_eq!(route("POST", "/jobs", None), Ok(Route::SubmitJob { parallelism: None, savepoint: None }));
        assert_eq!(
            route("POST", "/jobs", Some("parallelism=4")),
            Ok(Route::SubmitJob { parallelism: Some(4), savepoint: None })
        );
        assert_eq!(
            route("POST", "/jobs", Some("savepoint=/sp/a%20b%C3%A9.rvsp&parallelism=2")),
            Ok(Route::SubmitJob { parallelism: Some(2), savepoint: Some("/sp/a bé.rvsp".into()) })
        );
        assert_eq!(route("POST", "/jobs/3/stop", None), Ok(Route::StopJob(JobId(3))));
        assert_eq!(route("POST", "/jobs/job-3/savepoints", None), Ok(Route::TriggerSavepoint(JobId(3))));
        assert_eq!(route("GET", "/jobs/3/savepoints/2", None), Ok(Route::Savepoint(JobId(3), 2)));
        assert_eq!(route("GET", "/jobs/job-3", None), Ok(Route::Job(JobId(3))));
        assert_eq!(route("GET", "/jobs/3", None), Ok(Route::Job(JobId(3))));
        assert_eq!(route("POST", "/jobs/job-3/cancel", None), Ok(Route::CancelJob(JobId(3))));
        assert_eq!(route("GET", "/taskmanagers", Some("")), Ok(Route::TaskManagers));
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in
            ["/", "", "/job", "/jobs/", "/jobs//cancel", "/jobs/3/drain", "/jobs/3/cancel/x", "//jobs"]
        {
            let error = route("GET", path, None).unwrap_err();
            assert_eq!(error.status(), 404, "{path:?}: {error}");
            assert!(error.to_string().starts_with("no route"), "{error}");
        }
    }

    #[test]
    fn wrong_methods_are_405_naming_the_allowed_ones() {
        let error = route("DELETE", "/jobs/3", None).unwrap_err();
        assert_eq!(error.status(), 405);
        assert_eq!(error.to_string(), "DELETE /jobs/3 is not served; /jobs/3 takes GET");
        assert!(matches!(
            route("PUT", "/jobs", None),
            Err(RouteError::MethodNotAllowed { allowed: "GET, POST", .. })
        ));
        assert!(matches!(route("GET", "/jobs/3/cancel", None), Err(RouteError::MethodNotAllowed { .. })));
        assert!(matches!(route("POST", "/overview", None), Err(RouteError::MethodNotAllowed { .. })));
        // The method is checked before the id: a wrong method is wrong whatever the id.
        assert_eq!(route("PATCH", "/jobs/nope", None).unwrap_err().status(), 405);
    }

    #[test]
    fn malformed_job_ids_are_400() {
        let error = route("GET", "/jobs/job-x", None).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.to_string(), "\"job-x\" is not a job id (expected job-N or N, e.g. job-3)");
        assert_eq!(route("POST", "/jobs/-1/cancel", None).unwrap_err().status(), 400);
    }

    #[test]
    fn bad_queries_are_400_naming_the_parameter() {
        let message = |query: &str| route("POST", "/jobs", Some(query)).unwrap_err().to_string();
        assert_eq!(
            message("paralellism=4"),
            "unknown query parameter \"paralellism\"; POST /jobs takes only `parallelism` and `savepoint`"
        );
        assert_eq!(message("parallelism=0"), "`parallelism` must be a number from 1 to 1024, got \"0\"");
        assert_eq!(
            message("parallelism=1025"),
            "`parallelism` must be a number from 1 to 1024, got \"1025\""
        );
        assert_eq!(message("parallelism=+2"), "`parallelism` must be a number from 1 to 1024, got \"+2\"");
        assert_eq!(message("parallelism"), "`parallelism` must be a number from 1 to 1024, got \"\"");
        assert_eq!(message("parallelism=2&parallelism=3"), "`parallelism` is given twice");
        assert!(message("savepoint=%zz").starts_with("`savepoint` must be a percent-encoded UTF-8 path"));
        assert!(message("savepoint=%ff").starts_with("`savepoint` must be a percent-encoded UTF-8 path"));
        assert_eq!(message("savepoint="), "`savepoint` is empty: it takes a savepoint file's path");
        assert_eq!(message("savepoint=/a&savepoint=/b"), "`savepoint` is given twice");
        let error = route("GET", "/jobs/3/savepoints/0", None).unwrap_err();
        assert_eq!(error.to_string(), "\"0\" is not a savepoint request number (expected 1, 2, ...)");
        assert_eq!(route("GET", "/jobs/3/savepoints/+1", None).unwrap_err().status(), 400);
        assert!(matches!(route("GET", "/jobs/3/savepoints", None), Err(RouteError::MethodNotAllowed { .. })));
        let error = route("GET", "/jobs", Some("x=1")).unwrap_err();
        assert_eq!(error.to_string(), "/jobs takes no query parameters, got \"x=1\"");
    }

    #[test]
    fn paths_survive_percent_encoding() {
        for path in ["/tmp/sp/savepoint-job-1-2.rvsp", "/a b/c&d=e/é+%", ""] {
            assert_eq!(percent_decode(&percent_encode(path)).as_deref(), Some(path));
        }
        assert_eq!(percent_encode("/a b&c"), "/a%20b%26c");
    }

    #[test]
    fn quoted_input_is_cut_short() {
        let path = format!("/{}", "é".repeat(10_000));
        let message = route("GET", &path, None).unwrap_err().to_string();
        assert!(message.len() < 400, "{}", message.len());
    }
}
