//! Templates and static assets, compiled into the binary. Templates ending in `.html` are
//! auto-escaped, so every value rendered into a page is escaped.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("apps.html", include_str!("templates/apps.html")),
    ("app.html", include_str!("templates/app.html")),
    ("error.html", include_str!("templates/error.html")),
    ("app_tabs.html", include_str!("templates/app_tabs.html")),
    ("recordings.html", include_str!("templates/recordings.html")),
    ("recording.html", include_str!("templates/recording.html")),
    ("replay.html", include_str!("templates/replay.html")),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("delivery.html", include_str!("templates/delivery.html")),
    (
        "app_settings.html",
        include_str!("templates/app_settings.html"),
    ),
    ("users.html", include_str!("templates/users.html")),
    ("invitation.html", include_str!("templates/invitation.html")),
    ("signup.html", include_str!("templates/signup.html")),
    ("profile.html", include_str!("templates/profile.html")),
    ("servers.html", include_str!("templates/servers.html")),
    ("usage.html", include_str!("templates/usage.html")),
];

/// The templates, parsed once. A template that does not parse is a bug caught by the tests
/// below, hence the panic.
pub(crate) fn environment() -> &'static minijinja::Environment<'static> {
    static ENV: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        env
    })
}

/// `/dashboard/assets/{name}`: the stylesheet, the script and the icon, cached for an hour.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "dashboard.css" => (
            include_str!("assets/dashboard.css"),
            "text/css; charset=utf-8",
        ),
        "dashboard.js" => (
            include_str!("assets/dashboard.js"),
            "text/javascript; charset=utf-8",
        ),
        "servers.js" => (
            include_str!("assets/servers.js"),
            "text/javascript; charset=utf-8",
        ),
        "usage.js" => (
            include_str!("assets/usage.js"),
            "text/javascript; charset=utf-8",
        ),
        "usage.css" => (include_str!("assets/usage.css"), "text/css; charset=utf-8"),
        "favicon.svg" => (include_str!("assets/favicon.svg"), "image/svg+xml"),
        "recordings.js" => (
            include_str!("assets/recordings.js"),
            "text/javascript; charset=utf-8",
        ),
        "app-pages.css" => (
            include_str!("assets/app-pages.css"),
            "text/css; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates_parse_and_escape() {
        for (name, _) in super::TEMPLATES {
            super::environment().get_template(name).unwrap();
        }
        let env = super::environment();
        let html = env
            .get_template("error.html")
            .unwrap()
            .render(minijinja::context! { status => 404, message => "<script>x</script>" })
            .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>x"), "{html}");
    }
}
