//! The route table of the REST API and the OpenAPI 3.1 document made from it. Routes are added
//! through [`Api::add`], which registers the handler with the router (behind its auth guard) and the
//! operation in the document at once, so the document cannot list a route the router lacks or
//! miss one it serves. Schemas come from the same Rust types the handlers use (schemars).

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, on};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::AppState;
use super::auth::{Guard, authenticate};

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// How a successful answer looks.
#[derive(Clone, Copy)]
enum Success {
    Json(u16, SchemaFn),
    EventStream,
    Text,
}

/// One operation of the API: what the document says about a route.
#[derive(Clone)]
pub struct Operation {
    pub method: Method,
    pub path: &'static str,
    id: &'static str,
    summary: &'static str,
    pub guard: Guard,
    query: Option<SchemaFn>,
    body: Option<(SchemaFn, bool)>,
    success: Success,
    errors: &'static [u16],
    etag: bool,
}

/// Starts describing `method path`.
pub fn op(method: Method, path: &'static str, id: &'static str, summary: &'static str) -> Operation {
    Operation {
        method,
        path,
        id,
        summary,
        guard: Guard::Jwt,
        query: None,
        body: None,
        success: Success::Text,
        errors: &[],
        etag: false,
    }
}

impl Operation {
    pub fn guard(mut self, guard: Guard) -> Self {
        self.guard = guard;
        self
    }

    pub fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(schema_of::<T>);
        self
    }

    pub fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some((schema_of::<T>, true));
        self
    }

    pub fn optional_body<T: JsonSchema>(mut self) -> Self {
        self.body = Some((schema_of::<T>, false));
        self
    }

    pub fn ok<T: JsonSchema>(mut self, status: u16) -> Self {
        self.success = Success::Json(status, schema_of::<T>);
        self
    }

    pub fn event_stream(mut self) -> Self {
        self.success = Success::EventStream;
        self
    }

    pub fn text(mut self) -> Self {
        self.success = Success::Text;
        self
    }

    pub fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }

    /// Answers carry an `ETag`; writes honour `If-Match`.
    pub fn etag(mut self) -> Self {
        self.etag = true;
        self
    }
}

/// The router being built and the operations it serves.
pub struct Api {
    state: AppState,
    router: Router<AppState>,
    operations: Vec<Operation>,
}

impl Api {
    pub fn new(state: AppState) -> Self {
        Self { state, router: Router::new(), operations: Vec::new() }
    }

    /// Serves `operation` with `handler`, behind the operation's guard.
    pub fn add<H, T>(mut self, operation: Operation, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        // Every method this API uses has a filter; an unknown one would be a bug in the table.
        let filter = MethodFilter::try_from(operation.method.clone()).unwrap_or(MethodFilter::GET);
        let layer = from_fn_with_state((self.state.clone(), operation.guard), authenticate);
        self.router = self.router.route(operation.path, on(filter, handler).route_layer(layer));
        self.operations.push(operation);
        self
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<Operation>) {
        (self.router, self.operations)
    }
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": { "type": "string", "description": "A stable machine-readable code, e.g. invalid_argument, not_found, version_conflict, unauthorized." },
                    "message": { "type": "string", "description": "What went wrong, for people." },
                    "details": { "description": "e.g. {field, accepted} for invalid input, {current} (the task now) for a version conflict." }
                }
            }
        }
    })
}

fn error_description(status: u16) -> &'static str {
    match status {
        400 => "The request could not be read (malformed JSON or query).",
        401 => "No valid credential.",
        403 => "The Origin is not allowed (or, on the stream, a cross-site no-cors request).",
        404 => "Not found (or deleted).",
        409 => "Version conflict (expected_version): details.current is the task now.",
        412 => "Version conflict (If-Match): details.current is the task now.",
        413 => "The body is larger than 1 MiB.",
        415 => "The body is not application/json.",
        422 => "A value was refused: details.field names it.",
        429 => "Too many failed authentications from this address: see Retry-After.",
        503 => "The database is unavailable, or the request took too long: retry.",
        _ => "Error.",
    }
}

/// The OpenAPI 3.1 document of `operations`.
pub fn document(operations: &[Operation]) -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into());
    let mut generator = SchemaGenerator::new(settings);
    let mut paths: Map<String, Value> = Map::new();
    for operation in operations {
        let mut entry = Map::new();
        entry.insert("operationId".into(), json!(operation.id));
        entry.insert("summary".into(), json!(operation.summary));
        let mut parameters = Vec::new();
        for name in path_parameters(operation.path) {
            parameters.push(path_parameter(name));
        }
        if let Some(query) = operation.query {
            let schema = query(&mut generator);
            let resolved = resolve(&generator, schema.as_value());
            if let Some(properties) = resolved.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    let mut schema = property.clone();
                    let description = schema.as_object_mut().and_then(|s| s.remove("description"));
                    // A blank value means "not given" (forms send `status=` for "any").
                    let schema = json!({ "anyOf": [schema, { "type": "string", "pattern": "^\\s*$" }] });
                    let mut parameter = json!({ "name": name, "in": "query", "required": false, "schema": schema });
                    if let Some(description) = description {
                        parameter["description"] = description;
                    }
                    parameters.push(parameter);
                }
            }
        }
        if operation.etag && operation.method != Method::GET && operation.method != Method::POST {
            parameters.push(json!({ "name": "If-Match", "in": "header", "required": false, "schema": super::schema::if_match(), "description": "The ETag read: the change applies only if the task is still at that version (else 412)." }));
        }
        if operation.id == "createTask" {
            parameters.push(json!({ "name": "Idempotency-Key", "in": "header", "required": false, "schema": super::schema::idempotency_key(), "description": "A retried create with the same key returns the first task." }));
        }
        if operation.success_is_stream() {
            parameters.push(json!({ "name": "Last-Event-ID", "in": "header", "required": false, "schema": super::schema::last_event_id(), "description": "Resume after this event id: the missed events come first." }));
        }
        if !parameters.is_empty() {
            entry.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some((body, required)) = operation.body {
            let schema = body(&mut generator);
            entry.insert(
                "requestBody".into(),
                json!({ "required": required, "content": { "application/json": { "schema": schema } } }),
            );
        }
        let mut responses = Map::new();
        match operation.success {
            Success::Json(status, schema) => {
                let schema = schema(&mut generator);
                let mut response =
                    json!({ "description": "OK", "content": { "application/json": { "schema": schema } } });
                if operation.etag {
                    response["headers"] = json!({ "ETag": { "schema": { "type": "string", "pattern": "^\"[0-9]+\"$" }, "description": "The task's version." } });
                }
                if operation.id == "createTask" {
                    response["links"] = task_links(operations);
                }
                responses.insert(status.to_string(), response);
            }
            Success::EventStream => {
                responses.insert(
                    "200".into(),
                    json!({ "description": "Server-Sent Events: id = seq, event = type, data = event JSON; heartbeats are comments.", "content": { "text/event-stream": { "schema": super::schema::stream_event() } } }),
                );
            }
            Success::Text => {
                responses.insert(
                    "200".into(),
                    json!({ "description": "OK", "content": { "text/plain": { "schema": { "type": "string" } } } }),
                );
            }
        }
        let mut errors: Vec<u16> = operation.errors.to_vec();
        if operation.guard != Guard::Public {
            errors.extend([401, 429]);
        }
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            responses.insert(
                status.to_string(),
                json!({ "description": error_description(status), "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
            );
        }
        entry.insert("responses".into(), Value::Object(responses));
        match operation.guard {
            Guard::Public => {
                entry.insert("security".into(), json!([]));
            }
            Guard::JwtOrQuery => {
                entry.insert("security".into(), json!([{ "bearer": [] }, { "accessTokenQuery": [] }]));
            }
            Guard::Jwt | Guard::ApiKey => {}
        }
        let item = paths.entry(operation.path.to_owned()).or_insert_with(|| json!({}));
        item[operation.method.as_str().to_ascii_lowercase()] = Value::Object(entry);
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "task-mcp",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tasks shared by AI agents and people. Errors are {\"error\": {\"code\", \"message\", \"details\"}}. MCP over Streamable HTTP is served at /mcp (X-API-Key)."
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "HS256; get one with `task-mcp token`." },
                "accessTokenQuery": { "type": "apiKey", "in": "query", "name": "access_token", "description": "The same JWT, or a stream ticket from POST /api/tasks/stream/ticket (preferred: it keeps the sign-in token out of URLs), for EventSource (stream only)." }
            }
        },
        "security": [{ "bearer": [] }]
    })
}

impl Operation {
    fn success_is_stream(&self) -> bool {
        matches!(self.success, Success::EventStream)
    }
}

/// OpenAPI links from a created task to every operation on `/api/tasks/{id}...`: clients (and
/// stateful testers) follow the new task's id.
fn task_links(operations: &[Operation]) -> Value {
    let mut links = Map::new();
    for operation in operations.iter().filter(|o| path_parameters(o.path) == ["id"]) {
        links.insert(
            operation.id.to_owned(),
            json!({ "operationId": operation.id, "parameters": { "id": "$response.body#/id" } }),
        );
    }
    Value::Object(links)
}

/// A path parameter: a task (`id`) is its UUID or its key; a repository (`name`) its name.
fn path_parameter(name: &str) -> Value {
    if name == "id" {
        json!({ "name": name, "in": "path", "required": true,
                "description": "The task's UUID or its key (e.g. WEB-42, any case).",
                "schema": { "type": "string", "pattern": crate::wire::TASK_REF_PATTERN } })
    } else {
        json!({ "name": name, "in": "path", "required": true,
                "description": "The repository's name (a / in it written %2F).", "schema": { "type": "string" } })
    }
}

fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

/// A `$ref` schema replaced by its definition (for reading a query type's properties).
fn resolve(generator: &SchemaGenerator, schema: &Value) -> Value {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str)
        && let Some(name) = reference.rsplit('/').next()
        && let Some(definition) = generator.definitions().get(name)
    {
        return definition.clone();
    }
    schema.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_states_the_parsers_rules_and_links_a_created_task_to_its_operations() {
        use crate::http::tasks::{CreateTaskBody, PatchTaskBody};
        let operations = [
            op(Method::POST, "/api/tasks", "createTask", "Create").body::<CreateTaskBody>().ok::<String>(201),
            op(Method::PATCH, "/api/tasks/{id}", "updateTask", "Change").body::<PatchTaskBody>().etag(),
        ];
        let doc = document(&operations);
        let schemas = &doc["components"]["schemas"];
        let create = &schemas["CreateTaskBody"];
        assert_eq!(create["required"], json!(["title"]));
        assert_eq!(create["properties"]["title"]["minLength"], 1);
        assert_eq!(create["properties"]["title"]["maxLength"], crate::domain::TITLE_MAX_CHARS);
        let patch = &schemas["PatchTaskBody"]["properties"];
        assert_eq!(patch["title"]["type"], "string", "a title cannot be cleared");
        assert_eq!(patch["description"]["type"], json!(["string", "null"]), "a description can");
        assert_eq!(patch["expected_version"]["minimum"], 1);
        assert!(patch["status"]["enum"].as_array().is_some_and(|e| e.contains(&json!("in_progress"))));
        let links = &doc["paths"]["/api/tasks"]["post"]["responses"]["201"]["links"];
        assert_eq!(links["updateTask"]["parameters"]["id"], "$response.body#/id");
        let if_match = &doc["paths"]["/api/tasks/{id}"]["patch"]["parameters"][1];
        assert_eq!(if_match["name"], "If-Match");
        assert!(if_match["schema"]["pattern"].is_string());
    }

    #[test]
    fn path_parameters_are_found() {
        assert_eq!(path_parameters("/api/tasks/{id}/comments"), vec!["id"]);
        assert!(path_parameters("/api/tasks").is_empty());
    }
}
