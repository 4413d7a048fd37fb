//! A router that remembers the path templates it serves. axum's `Router` cannot list its
//! routes, and the access-control and hostile-input tests must reach every route, so
//! every route of Custodian is added through [`Routes`], which keeps the list.

use axum::Router;
use axum::routing::MethodRouter;

/// An axum router and the path templates (`/hosts/{id}`) of its routes.
pub struct Routes<S> {
    router: Router<S>,
    templates: Vec<String>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Routes { router: Router::new(), templates: Vec::new() }
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route, as `Router::route` does.
    pub fn route(mut self, template: &str, methods: MethodRouter<S>) -> Self {
        self.router = self.router.route(template, methods);
        self.templates.push(template.to_string());
        self
    }

    /// Changes the router without adding routes: layers, fallbacks.
    pub fn map(mut self, change: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = change(self.router);
        self
    }

    /// Serves `other`'s routes under `prefix`, as `Router::nest` does.
    pub fn nest(mut self, prefix: &str, other: Routes<S>) -> Self {
        self.router = self.router.nest(prefix, other.router);
        self.templates.extend(other.templates.into_iter().map(|t| format!("{prefix}{t}")));
        self
    }

    /// Serves `other`'s routes too, as `Router::merge` does.
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.templates.extend(other.templates);
        self
    }

    pub fn into_parts(self) -> (Router<S>, Vec<String>) {
        (self.router, self.templates)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[test]
    fn nested_and_merged_templates_are_listed_with_their_prefix() {
        let scim = Routes::<()>::new().route("/Users", get(|| async { "" })).route("/Users/{id}", get(|| async { "" }));
        let api = Routes::new().route("/api/hosts", get(|| async { "" }));
        let (_, templates) = Routes::new().nest("/scim/v2", scim).merge(api).into_parts();
        assert_eq!(templates, ["/scim/v2/Users", "/scim/v2/Users/{id}", "/api/hosts"]);
    }
}
