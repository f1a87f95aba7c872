//! Who a function container runs as, and how many processes it may have.
//!
//! - **User.** The `com.ferry.user` annotation when the deployment has one; otherwise the
//!   image's own `USER` when it sets one; otherwise `function_user` (`65534:65534`,
//!   nobody). The value `image` (or an empty annotation) leaves the choice to the image:
//!   its `USER`, root without one. A user is `uid[:gid]` or a name from the image's `/etc/passwd`;
//!   `root` is read as `0:0`, since function images often have no `/etc/passwd` to look the
//!   name up in (and a bare uid without one gets group 0).
//! - **Pids limit.** The `com.ferry.pids-limit` annotation, else `function_pids_limit`
//!   (1024); `0` is no limit. It becomes `PidsLimit`, the container cgroup's `pids.max`: it
//!   counts threads as well as processes, and a `fork` past it fails (`EAGAIN`), so a fork
//!   bomb stays inside its container instead of exhausting the host's process ids.

use ferry_proto::FunctionDeployment;

use crate::error::ProviderError;

/// Annotation: the user a function's containers run as.
pub const USER_ANNOTATION: &str = "com.ferry.user";
/// Annotation: the pids limit of a function's containers (`0`: none).
pub const PIDS_LIMIT_ANNOTATION: &str = "com.ferry.pids-limit";
/// `function_user` default: nobody.
pub const DEFAULT_USER: &str = "65534:65534";
/// `function_pids_limit` default.
pub const DEFAULT_PIDS_LIMIT: u32 = 1024;
/// Longest user name or id accepted (the usual Linux limit of a user name).
const MAX_NAME: usize = 32;

/// How the user of a container is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChoice {
    /// Exactly this user (the annotation).
    Fixed(String),
    /// The image's `USER` when it sets one, else this user (`function_user`).
    UnlessImageSetsOne(String),
    /// Whatever the image says: its `USER`, or root without one.
    Image,
}

impl UserChoice {
    /// The choice for `d`, with `default` the `function_user` setting (`None`: empty).
    pub fn of(d: &FunctionDeployment, default: Option<&str>) -> Result<UserChoice, ProviderError> {
        if let Some(raw) = d.annotations.get(USER_ANNOTATION) {
            return match parse_user(raw) {
                Ok(Some(user)) => Ok(UserChoice::Fixed(user)),
                Ok(None) => Ok(UserChoice::Image),
                Err(reason) => Err(ProviderError::BadRequest(format!(
                    "invalid annotation {USER_ANNOTATION}: {reason}"
                ))),
            };
        }
        Ok(match default {
            Some(user) => UserChoice::UnlessImageSetsOne(user.to_string()),
            None => UserChoice::Image,
        })
    }

    /// Whether [`UserChoice::resolve`] needs the image's `USER`.
    pub fn needs_image_user(&self) -> bool {
        matches!(self, UserChoice::UnlessImageSetsOne(_))
    }

    /// The container's `User`, given the image's `USER` (`None` or empty: it sets none);
    /// `None` leaves the image's choice.
    pub fn resolve(self, image_user: Option<&str>) -> Option<String> {
        match self {
            UserChoice::Fixed(user) => Some(user),
            UserChoice::UnlessImageSetsOne(user) => image_user
                .is_none_or(|u| u.trim().is_empty())
                .then_some(user),
            UserChoice::Image => None,
        }
    }
}

/// The user value that leaves the choice to the image.
pub const IMAGE_USER: &str = "image";

/// Parses a user: `uid[:gid]`, `name[:group]` or `root` (read as `0:0`); [`IMAGE_USER`] or
/// empty is `None`, the image's choice.
pub fn parse_user(v: &str) -> Result<Option<String>, String> {
    let v = v.trim();
    if v.is_empty() || v == IMAGE_USER {
        return Ok(None);
    }
    if v == "root" {
        return Ok(Some("0:0".into()));
    }
    let mut parts = v.split(':');
    let ok = parts.by_ref().take(2).all(|part| {
        let first = part.bytes().next();
        !part.is_empty()
            && part.len() <= MAX_NAME
            && (part.parse::<u32>().is_ok()
                || (first.is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                    && part
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))))
    });
    if ok && parts.next().is_none() {
        Ok(Some(v.to_string()))
    } else {
        Err(format!(
            "{v:?} is not a user: expected uid[:gid] (e.g. 65534:65534), a name, root, or \
             {IMAGE_USER} for the image's own"
        ))
    }
}

/// Parses a pids limit: a whole number, `0` for none.
pub fn parse_pids_limit(v: &str) -> Result<u32, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a pids limit: expected a whole number, 0 for none"))
}

/// The `PidsLimit` of `d`'s containers, with `default` the `function_pids_limit` setting;
/// `None` is no limit.
pub fn pids_limit(d: &FunctionDeployment, default: u32) -> Result<Option<i64>, ProviderError> {
    let limit = match d.annotations.get(PIDS_LIMIT_ANNOTATION) {
        Some(raw) => parse_pids_limit(raw).map_err(|reason| {
            ProviderError::BadRequest(format!(
                "invalid annotation {PIDS_LIMIT_ANNOTATION}: {reason}"
            ))
        })?,
        None => default,
    };
    Ok((limit > 0).then_some(i64::from(limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated(pairs: &[(&str, &str)]) -> FunctionDeployment {
        FunctionDeployment {
            service: "f".into(),
            image: "i".into(),
            annotations: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn user(
        annotations: &[(&str, &str)],
        default: Option<&str>,
        image: Option<&str>,
    ) -> Option<String> {
        UserChoice::of(&annotated(annotations), default)
            .unwrap()
            .resolve(image)
    }

    #[test]
    fn the_image_user_is_kept_else_the_default_applies() {
        let nobody = Some(DEFAULT_USER);
        // No USER in the image: the default.
        assert_eq!(user(&[], nobody, None), Some(DEFAULT_USER.into()));
        assert_eq!(user(&[], nobody, Some("")), Some(DEFAULT_USER.into()));
        // The image's USER is kept (root too, when the image says so).
        assert_eq!(user(&[], nobody, Some("app")), None);
        assert_eq!(user(&[], nobody, Some("0")), None);
        // Setting empty: the image's choice, whatever it is.
        assert_eq!(user(&[], None, None), None);
        assert!(
            !UserChoice::of(&annotated(&[]), None)
                .unwrap()
                .needs_image_user()
        );
        assert!(
            UserChoice::of(&annotated(&[]), nobody)
                .unwrap()
                .needs_image_user()
        );
    }

    #[test]
    fn the_annotation_wins() {
        let nobody = Some(DEFAULT_USER);
        let cases = [
            ("0", Some("0")),
            ("root", Some("0:0")),
            ("1000:1000", Some("1000:1000")),
            ("app", Some("app")),
            // The image's choice, even over the default.
            ("", None),
            ("image", None),
        ];
        for (value, expected) in cases {
            let choice = UserChoice::of(&annotated(&[(USER_ANNOTATION, value)]), nobody).unwrap();
            assert!(!choice.needs_image_user());
            assert_eq!(
                choice.resolve(None),
                expected.map(String::from),
                "{value:?}"
            );
        }
        assert_eq!(
            user(&[(USER_ANNOTATION, "0")], None, Some("app")),
            Some("0".into())
        );
    }

    #[test]
    fn bad_users_are_refused_naming_the_annotation() {
        for bad in [
            "a b",
            "1:2:3",
            ":1",
            "1:",
            "-x",
            "x/y",
            "99999999999",
            &"a".repeat(33),
        ] {
            assert!(parse_user(bad).is_err(), "{bad:?}");
            let e = UserChoice::of(&annotated(&[(USER_ANNOTATION, bad)]), None).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
            assert!(e.to_string().contains(USER_ANNOTATION), "{e}");
        }
        assert_eq!(
            parse_user(" nobody:nogroup ").unwrap().as_deref(),
            Some("nobody:nogroup")
        );
    }

    #[test]
    fn pids_limit_from_the_setting_or_the_annotation() {
        assert_eq!(
            pids_limit(&annotated(&[]), DEFAULT_PIDS_LIMIT).unwrap(),
            Some(1024)
        );
        assert_eq!(pids_limit(&annotated(&[]), 0).unwrap(), None);
        let own = annotated(&[(PIDS_LIMIT_ANNOTATION, "64")]);
        assert_eq!(pids_limit(&own, 0).unwrap(), Some(64));
        let unlimited = annotated(&[(PIDS_LIMIT_ANNOTATION, "0")]);
        assert_eq!(pids_limit(&unlimited, DEFAULT_PIDS_LIMIT).unwrap(), None);
        for bad in ["-1", "lots", "1.5", ""] {
            let e = pids_limit(&annotated(&[(PIDS_LIMIT_ANNOTATION, bad)]), 1).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
            assert!(e.to_string().contains(PIDS_LIMIT_ANNOTATION), "{e}");
        }
    }
}
