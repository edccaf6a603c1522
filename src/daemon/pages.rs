//! The pages the daemon serves: the cashier screen at `/` and the manager's pages at
//! `/manager`. For now they are the session mechanics with a plain status page; the
//! screens themselves are the pages issue's. Nothing is loaded from elsewhere.

use super::api::{page_role, status_json, AppState, Role};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/", get(cashier)).route("/manager", get(manager))
}

fn page(title: &str, body: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <style>body{{font-family:system-ui,'Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif;margin:2rem;font-size:1.25rem}}\
         pre{{white-space:pre-wrap}}</style></head><body><h1>{title}</h1>{body}</body></html>"
    ))
    .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn cashier(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match page_role(&s, &headers).await {
        Some(_) => {
            let status = status_json(&s).await.map(|v| serde_json::to_string_pretty(&v).unwrap_or_default());
            page("redeemd 收银 · Cashier", &format!("<pre>{}</pre>", escape(&status.unwrap_or_default())))
        }
        None => page(
            "redeemd 收银 · Cashier",
            "<p>请在终端上运行 <code>redeemd cashier-url</code> 并打开它给出的链接。</p>\
             <p>Run <code>redeemd cashier-url</code> on the terminal and open the link it prints.</p>",
        ),
    }
}

async fn manager(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match page_role(&s, &headers).await {
        Some(Role::Manager | Role::Pos) => {
            let status = status_json(&s).await.map(|v| serde_json::to_string_pretty(&v).unwrap_or_default());
            page("redeemd 店长 · Manager", &format!("<pre>{}</pre>", escape(&status.unwrap_or_default())))
        }
        _ => page(
            "redeemd 店长 · Manager",
            "<form method=\"post\" action=\"/manager/login\"><label>PIN \
             <input name=\"pin\" type=\"password\" inputmode=\"numeric\" autocomplete=\"off\"></label> \
             <button type=\"submit\">登录 · Log in</button></form>",
        ),
    }
}
