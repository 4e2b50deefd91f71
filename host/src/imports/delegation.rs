//! `delegation`: runs another plugin (see delegate.rs). The delegate's
//! errors reach the calling plugin as CNI errors, unchanged.

use crate::bindings::cni_wasm::plugin::cni::{self, Capability};
use crate::bindings::cni_wasm::plugin::delegation::{Command, Host};
use crate::context::HostState;
use crate::imports::convert::result_to_wit;
use crate::journal::Entry;
use crate::protocol::env;
use crate::protocol::error::code;

impl Host for HostState {
    fn invoke(
        &mut self,
        plugin_type: String,
        command: Command,
        config: Option<String>,
    ) -> wasmtime::Result<Result<Option<cni::CniResult>, cni::Error>> {
        if let Err(super::CallError::Capability(denied)) =
            self.require_on(Capability::Delegation, "delegation.invoke", &plugin_type)
        {
            self.audit_verdict("denied");
            return Ok(Err(cni::Error { code: code::INTERNAL, msg: denied.message, details: String::new() }));
        }
        let command = match command {
            Command::Add => env::Command::Add,
            Command::Del => env::Command::Del,
            Command::Check => env::Command::Check,
            Command::Status => env::Command::Status,
            Command::Gc => env::Command::Gc,
        };
        let stdin = config.map(String::into_bytes).unwrap_or_else(|| self.call.config.raw.clone());
        let call = self.call.clone();
        match self.delegator.clone().delegate(&call, &self.grants, &plugin_type, command, stdin.clone()) {
            Ok(result) => {
                if command == env::Command::Add {
                    self.journal.record(Entry::DelegateAdded { plugin_type, stdin });
                }
                Ok(Ok(result.as_ref().map(result_to_wit)))
            }
            Err(error) => Ok(Err(cni::Error { code: error.code, msg: error.msg, details: error.details })),
        }
    }
}
