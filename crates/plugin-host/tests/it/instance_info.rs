//! What an instance reports about its verification: read through the table's optional
//! `instance_info`, and "unspecified" for plugins built with the first v2 table.

use crate::support::{PROBE_PLUGIN, build_c_library};
use tributary_model::v1::VerificationState;
use tributary_plugin_host::{AdapterInstance, Plugin};

fn instance(source: &str) -> AdapterInstance {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = Plugin::load(&build_c_library(dir.path(), "probe", source)).expect("loads");
    AdapterInstance::create(plugin, br#"{"host": {}, "config": {}}"#).expect("created")
}

#[test]
fn a_plugin_built_with_the_first_v2_table_still_loads_and_reports_unspecified() {
    // `size` as a plugin built before `instance_info` existed declares it: 8 + 5 pointers.
    let old = PROBE_PLUGIN.replace(
        ".size = sizeof(AdapterVTableV2),",
        ".size = 8 + 5 * sizeof(void *),",
    );
    assert_ne!(old, PROBE_PLUGIN);
    let instance = instance(&old);
    assert_eq!(
        instance.instance_info().verification,
        VerificationState::Unspecified as i32
    );
    // A null `instance_info` in a full-size table means the same.
    let instance = self::instance(PROBE_PLUGIN);
    assert_eq!(
        instance.instance_info().verification,
        VerificationState::Unspecified as i32
    );
}

#[test]
fn a_reported_state_reaches_the_host() {
    let reporting = PROBE_PLUGIN.replace(
        "static const AdapterVTableV2 VTABLE = {",
        "static int32_t instance_info(const void *instance, PluginBuffer *out) {\n\
           (void)instance;\n\
           /* InstanceInfo { verification: NOT_CONFIGURED, secrets: [{index: 1, label: \"a\"}] } */\n\
           static const uint8_t bytes[] = {0x08, 0x02, 0x12, 0x05, 0x08, 0x01, 0x12, 0x01, 'a'};\n\
           *out = copy_out(bytes, sizeof bytes);\n\
           return TRIBUTARY_STATUS_OK;\n\
         }\n\
         static const AdapterVTableV2 VTABLE = {\n    .instance_info = instance_info,",
    );
    let instance = instance(&reporting);
    let info = instance.instance_info();
    assert_eq!(info.verification, VerificationState::NotConfigured as i32);
    assert_eq!(info.secrets.len(), 1);
    assert_eq!(
        (info.secrets[0].index, info.secrets[0].label.as_str()),
        (1, "a")
    );
}
