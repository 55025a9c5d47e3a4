//! What an incoming MCP message is before rmcp sees it: a message to serve, a notification to
//! ignore, or a refusal to answer with a JSON-RPC error. rmcp drops unreadable stdio lines without a
//! word, answers unreadable HTTP bodies with a plain-text 415, and routes a known method whose params
//! do not fit to "method not found": both transports classify here first, so every bad message gets
//! an answer that says what was wrong.

use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, InitializeRequestParams, JsonRpcMessage,
};
use serde_json::{Value, json};

/// The longest stdio line read, in bytes (rmcp's default, which is also its HTTP client's largest
/// event): a longer one is refused unread.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The UTF-8 byte order mark: RFC 8259 lets a parser ignore it, and some Windows clients send it.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// JSON-RPC 2.0 error codes.
pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;
pub const INVALID_PARAMS: i32 = -32602;

/// The methods this server serves with typed params: one of them arriving as rmcp's catch-all
/// `CustomRequest` means its params did not fit.
const TYPED_METHODS: &[&str] = &["initialize", "ping", "server/discover", "tools/list", "tools/call"];

#[derive(Debug)]
pub enum Inbound {
    /// A message rmcp can serve.
    Message(Box<ClientJsonRpcMessage>),
    /// A notification this server cannot read: JSON-RPC answers notifications never.
    Ignored,
    Refused(Refusal),
}

/// A JSON-RPC error answer to a message that cannot be served.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The id of the request, when it could be read; `null` otherwise.
    pub id: Value,
    pub code: i32,
    pub message: String,
}

impl Refusal {
    fn new(id: Value, code: i32, message: String) -> Self {
        Self { id, code, message }
    }

    /// A line longer than [`MAX_LINE_BYTES`].
    pub fn oversized() -> Self {
        Self::new(
            Value::Null,
            INVALID_REQUEST,
            format!(
                "Invalid Request: the message is longer than {MAX_LINE_BYTES} bytes, the most one line may carry; it was \
                 not read"
            ),
        )
    }

    /// Whether no request could be read at all (parse error or invalid request), as opposed to a
    /// request whose params do not fit: over HTTP the first is a 400, the second a JSON-RPC answer.
    pub fn unreadable(&self) -> bool {
        self.code != INVALID_PARAMS
    }

    /// The JSON-RPC error response.
    pub fn to_json(&self) -> Value {
        json!({"jsonrpc": "2.0", "id": self.id, "error": {"code": self.code, "message": self.message}})
    }
}

/// Classifies one message (a stdio line without its line break, or an HTTP body).
pub fn classify(bytes: &[u8]) -> Inbound {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if let Some(key) = crate::json_keys::first_duplicate(bytes) {
        // Which of the two values was meant cannot be known: refused, under the id if it is clear.
        let id = serde_json::from_slice::<Value>(bytes).map(|v| request_id(&v)).unwrap_or(Value::Null);
        let id = if key == "id" { Value::Null } else { id };
        let message = format!("Invalid Request: the key {key:?} is given twice in one object; send each key once");
        return Inbound::Refused(Refusal::new(id, INVALID_REQUEST, message));
    }
    let typed = match serde_json::from_slice::<ClientJsonRpcMessage>(bytes) {
        Ok(message) => return check_params(message),
        Err(err) => err,
    };
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(err) => {
            return Inbound::Refused(Refusal::new(
                Value::Null,
                PARSE_ERROR,
                format!("Parse error: the message is not valid JSON in UTF-8 ({err})"),
            ));
        }
    };
    let id = request_id(&value);
    if id.is_null() && value.get("id").is_none() && value.get("method").is_some_and(Value::is_string) {
        tracing::debug!("ignoring a notification this server cannot read: {typed}");
        return Inbound::Ignored;
    }
    Inbound::Refused(Refusal::new(id, INVALID_REQUEST, format!("Invalid Request: {}", what_is_wrong(&value))))
}

/// A request for a method this server serves whose params did not fit its type lands in rmcp's
/// catch-all, which would answer "method not found": refuse it as invalid params, saying why.
fn check_params(message: ClientJsonRpcMessage) -> Inbound {
    let JsonRpcMessage::Request(request) = &message else { return Inbound::Message(Box::new(message)) };
    let ClientRequest::CustomRequest(custom) = &request.request else { return Inbound::Message(Box::new(message)) };
    if !TYPED_METHODS.contains(&custom.method.as_str()) {
        return Inbound::Message(Box::new(message));
    }
    let why = match custom.method.as_str() {
        "tools/call" => params_error::<CallToolRequestParams>(&custom.params),
        "initialize" => params_error::<InitializeRequestParams>(&custom.params),
        _ => None,
    }
    .unwrap_or_else(|| "must be an object".to_owned());
    let id = serde_json::to_value(&request.id).unwrap_or(Value::Null);
    Inbound::Refused(Refusal::new(id, INVALID_PARAMS, format!("Invalid params of {}: {why}", custom.method)))
}

fn params_error<T: serde::de::DeserializeOwned>(params: &Option<Value>) -> Option<String> {
    match params {
        None => Some("params are missing".to_owned()),
        Some(params) => serde_json::from_value::<T>(params.clone()).err().map(|e| e.to_string()),
    }
}

/// The id of a message that is not a valid request, if it has a usable one (JSON-RPC answers an
/// invalid request under its id when the id can be read, `null` otherwise).
fn request_id(value: &Value) -> Value {
    match value.get("id") {
        Some(id @ Value::String(_)) => id.clone(),
        Some(id @ Value::Number(n)) if n.is_i64() => id.clone(),
        _ => Value::Null,
    }
}

/// What makes valid JSON not a JSON-RPC 2.0 message, in words.
fn what_is_wrong(value: &Value) -> String {
    let Value::Object(object) = value else {
        let kind = match value {
            Value::Array(items) if items.is_empty() => "an empty array",
            Value::Array(_) => "an array (batches are not part of MCP)",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return format!("a JSON-RPC message is an object, not {kind}");
    };
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return "\"jsonrpc\" must be \"2.0\"".to_owned();
    }
    match (object.get("method"), object.get("id")) {
        (Some(method), _) if !method.is_string() => "\"method\" must be a string".to_owned(),
        (Some(_), _) if object.get("params").is_some_and(|p| !(p.is_object() || p.is_array())) => {
            "\"params\" must be an object".to_owned()
        }
        (_, Some(id)) if !(id.is_string() || id.as_i64().is_some() || id.is_null()) => {
            "\"id\" must be a string or an integer".to_owned()
        }
        (None, Some(_)) if object.get("result").is_none() && object.get("error").is_none() => {
            "a request needs a \"method\"".to_owned()
        }
        _ => "the message is not a request, notification or response of MCP".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(bytes: &[u8]) -> Refusal {
        match classify(bytes) {
            Inbound::Refused(refusal) => refusal,
            other => panic!("{:?} was not refused: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn unreadable_json_is_a_parse_error_without_an_id() {
        for bytes in [&b"{\"jsonrpc\": \"2.0\", \"id\": 1,"[..], b"\xff", b"{\"a\": \"\\ud800\"}", b""] {
            let refusal = refused(bytes);
            assert_eq!((refusal.code, &refusal.id), (PARSE_ERROR, &Value::Null), "{bytes:?}");
            assert!(refusal.unreadable());
        }
    }

    #[test]
    fn json_that_is_not_json_rpc_is_an_invalid_request_under_its_id_if_readable() {
        let refusal = refused(br#"{"jsonrpc": "1.0", "id": 7, "method": "ping"}"#);
        assert_eq!((refusal.code, refusal.id), (INVALID_REQUEST, json!(7)));
        assert!(refusal.message.contains("2.0"), "{}", refusal.message);
        let refusal = refused(br#"{"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}"#);
        assert_eq!((refusal.code, refusal.id), (INVALID_REQUEST, Value::Null));
        assert!(refused(b"[]").message.contains("empty array"));
    }

    #[test]
    fn misfitting_params_of_a_served_method_are_invalid_params_naming_the_problem() {
        let refusal = refused(br#"{"jsonrpc": "2.0", "id": "x", "method": "tools/call", "params": {"arguments": {}}}"#);
        assert_eq!((refusal.code, refusal.id.clone()), (INVALID_PARAMS, json!("x")));
        assert!(refusal.message.contains("name"), "{}", refusal.message);
        assert!(!refusal.unreadable());
    }

    #[test]
    fn a_key_given_twice_is_refused_naming_it() {
        let call = br#"{"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "create_task", "arguments": {"title": "a", "title": "b"}}}"#;
        let refusal = refused(call);
        assert_eq!((refusal.code, refusal.id), (INVALID_REQUEST, json!(4)));
        assert!(refusal.message.contains("\"title\""), "{}", refusal.message);
        let refusal = refused(br#"{"jsonrpc": "2.0", "id": 4, "id": 5, "method": "ping"}"#);
        assert_eq!(refusal.id, Value::Null);
    }

    #[test]
    fn good_messages_pass_and_unknown_notifications_are_ignored() {
        let ping = br#"{"jsonrpc": "2.0", "id": 1, "method": "ping"}"#;
        assert!(matches!(classify(ping), Inbound::Message(_)));
        let with_bom = [&b"\xEF\xBB\xBF"[..], ping].concat();
        assert!(matches!(classify(&with_bom), Inbound::Message(_)));
        let call = br#"{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_tasks"}}"#;
        assert!(matches!(classify(call), Inbound::Message(_)));
        let lsp = br#"{"jsonrpc": "2.0", "method": "$/setTrace", "params": {"value": "off"}}"#;
        assert!(matches!(classify(lsp), Inbound::Ignored | Inbound::Message(_)));
    }
}
