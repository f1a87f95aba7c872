//! The built-in templates, embedded in the binary (`include_str!`), so `ferry new` and
//! `ferry build` need neither the network nor a registry:
//!
//! | lang | handler folder | image |
//! |---|---|---|
//! | `shell` | `handler.sh` | `FROM ferry/watchdog` (busybox + watchdog), the folder in `/home/app`, mode `serializing` |
//! | `dockerfile` | `Dockerfile`, `main.sh` | the folder is the build context; the example starts from `ferry/watchdog`, mode `streaming` |
//! | `rust` | `Cargo.toml`, `src/main.rs` (std only) | compiled on the host, statically linked, `FROM scratch` + the watchdog, mode `serializing` |
//!
//! `{{name}}` in a template file becomes the function's name.

use std::path::Path;

use crate::error::{Error, Result};

/// One file of a template.
pub struct TemplateFile {
    /// Path in the handler folder (or, for `Dockerfile` of shell and rust, the build context).
    pub path: &'static str,
    /// Contents, with `{{name}}` placeholders.
    pub contents: &'static str,
    /// Unix mode.
    pub mode: u32,
}

/// A built-in template.
pub struct Template {
    /// Its `lang`.
    pub lang: &'static str,
    /// One line for `ferry new --list`.
    pub summary: &'static str,
    /// What `ferry new` writes into the handler folder.
    pub handler: &'static [TemplateFile],
    /// The Dockerfile `ferry build` puts next to the handler (none: the handler has its own).
    pub dockerfile: Option<&'static str>,
}

/// Every template.
pub const TEMPLATES: [Template; 3] = [
    Template {
        lang: "shell",
        summary: "a shell script run by busybox for each request (mode serializing)",
        handler: &[TemplateFile {
            path: "handler.sh",
            contents: include_str!("../templates/shell/handler.sh"),
            mode: 0o755,
        }],
        dockerfile: Some(include_str!("../templates/shell/Dockerfile")),
    },
    Template {
        lang: "dockerfile",
        summary: "your own Dockerfile; the example streams each body through a script",
        handler: &[
            TemplateFile {
                path: "Dockerfile",
                contents: include_str!("../templates/dockerfile/Dockerfile"),
                mode: 0o644,
            },
            TemplateFile {
                path: "main.sh",
                contents: include_str!("../templates/dockerfile/main.sh"),
                mode: 0o755,
            },
        ],
        dockerfile: None,
    },
    Template {
        lang: "rust",
        summary: "a Rust program (std only) compiled on the host into a FROM scratch image",
        handler: &[
            TemplateFile {
                path: "Cargo.toml",
                contents: include_str!("../templates/rust/Cargo.toml"),
                mode: 0o644,
            },
            TemplateFile {
                path: "src/main.rs",
                contents: include_str!("../templates/rust/main.rs"),
                mode: 0o644,
            },
        ],
        dockerfile: Some(include_str!("../templates/rust/Dockerfile")),
    },
];

/// The template of `lang` (`Dockerfile` is read as `dockerfile`, as faas-cli does).
pub fn find(lang: &str) -> Result<&'static Template> {
    let lang = if lang == "Dockerfile" {
        "dockerfile"
    } else {
        lang
    };
    TEMPLATES.iter().find(|t| t.lang == lang).ok_or_else(|| {
        let known: Vec<_> = TEMPLATES.iter().map(|t| t.lang).collect();
        Error::Usage(format!(
            "no template {lang:?}; the built-in templates are {}",
            known.join(", ")
        ))
    })
}

/// `text` with `{{name}}` replaced.
pub fn render(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
}

/// Writes `template`'s handler files for function `name` into `dir`, which must not exist.
pub fn write_handler(template: &Template, name: &str, dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if dir.exists() {
        return Err(Error::Usage(format!(
            "{} exists already; choose another name or --handler",
            dir.display()
        )));
    }
    for file in template.handler {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        std::fs::write(&path, render(file.contents, name)).map_err(Error::io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))
            .map_err(Error::io(&path))?;
    }
    Ok(())
}
