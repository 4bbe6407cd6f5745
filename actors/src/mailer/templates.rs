//! Mail templates: an HTML part (CSS inlined) and a plain-text part, both rendered from the
//! request's `message` with tera.
//!
//! The defaults are compiled in; `MAIL_TEMPLATES_DIR` may hold `mail.html` and/or `mail.txt`
//! to replace them. Only the HTML template is HTML-escaped (tera escapes `.html` names): the
//! plain part shows `Tom & Jerry's` as written.

use std::path::Path;

use anyhow::Context as _;
use tera::{Context, Tera};

const HTML: &str = "mail.html";
const TEXT: &str = "mail.txt";

/// The two rendered parts of a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// HTML with every style inlined.
    pub html: String,
    /// Plain text, not escaped.
    pub text: String,
}

/// The loaded templates.
#[derive(Debug, Clone)]
pub struct Templates {
    tera: Tera,
}

impl Templates {
    /// The built-in templates, replaced by files found in `dir`.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut tera = Tera::default();
        tera.add_raw_template(HTML, include_str!("templates/mail.html"))?;
        tera.add_raw_template(TEXT, include_str!("templates/mail.txt"))?;
        if let Some(dir) = dir {
            anyhow::ensure!(dir.is_dir(), "MAIL_TEMPLATES_DIR: {} is not a directory", dir.display());
            for name in [HTML, TEXT] {
                let path = dir.join(name);
                if path.exists() {
                    tera.add_template_file(&path, Some(name))
                        .with_context(|| format!("MAIL_TEMPLATES_DIR: cannot load {}", path.display()))?;
                }
            }
        }
        let templates = Self { tera };
        templates.render("check", "check", "check").context("MAIL_TEMPLATES_DIR: templates do not render")?;
        Ok(templates)
    }

    /// Render both parts for `message`.
    pub fn render(&self, message: &str, subject: &str, from_name: &str) -> anyhow::Result<Rendered> {
        let mut ctx = Context::new();
        ctx.insert("message", message);
        ctx.insert("subject", subject);
        ctx.insert("from_name", from_name);
        let html = self.tera.render(HTML, &ctx).context("rendering the HTML template")?;
        let html = css_inline::inline(&html).context("inlining CSS")?;
        let text = self.tera.render(TEXT, &ctx).context("rendering the text template")?;
        Ok(Rendered { html, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_part_is_not_escaped_and_html_is_escaped_with_inlined_css() {
        let t = Templates::load(None).expect("built-in templates");
        let r = t.render("Tom & Jerry's\n<b>", "Hi", "Troupe").expect("renders");
        assert_eq!(r.text.trim_end(), "Tom & Jerry's\n<b>");
        assert!(r.html.contains("Tom &amp; Jerry's<br>&lt;b&gt;"), "{}", r.html);
        assert!(!r.html.contains("<style"), "style tags are inlined: {}", r.html);
        assert!(r.html.contains("style=\""), "{}", r.html);
    }

    #[test]
    fn templates_can_be_replaced_from_a_directory() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("mail.txt"), "Note: {{ message }}").expect("write");
        let t = Templates::load(Some(dir.path())).expect("loads");
        assert_eq!(t.render("a & b", "s", "n").expect("renders").text, "Note: a & b");
    }
}
