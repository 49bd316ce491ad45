//! The offline, deterministic test model.
use crate::cancel::CancelToken;
use crate::model::{Delta, Model, ModelError, ModelRequest, ModelResponse};
pub struct TestModel {
    id: String,
}
impl TestModel {
    pub fn new(model: &str) -> Self {
        TestModel {
            id: model.to_string(),
        }
    }
}
impl Model for TestModel {
    fn id(&self) -> &str {
        &self.id
    }
    fn provider(&self) -> &str {
        "Test"
    }
    fn invoke(
        &self,
        request: &ModelRequest<'_>,
        _cancel: &CancelToken,
        on_delta: &mut dyn FnMut(&Delta),
    ) -> Result<ModelResponse, ModelError> {
        let user = request
            .messages
            .last()
            .and_then(|m| m.content.clone())
            .unwrap_or_default();
        let text = format!("Test reply to \"{user}\".");
        on_delta(&Delta {
            content: text.clone(),
            provider_data: None,
        });
        Ok(ModelResponse {
            content: text,
            ..ModelResponse::default()
        })
    }
}
