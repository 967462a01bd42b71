//! Small C plugins for the host's tests, built with the system compiler
//! (`tributary_test_kit::c_library`).

use std::path::{Path, PathBuf};

pub use tributary_test_kit::c_library as build_c_library;

/// A working plugin named "probe" whose `handle` misbehaves on request: a request containing
/// `GARBAGE` gets bytes that are no protobuf, `NO-OUTCOME` an empty result, `FAIL` an error,
/// `SLEEP` an answer after 300 ms; anything else an empty normalized result.
pub const PROBE_PLUGIN: &str = r#"
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tributary_plugin.h"

static PluginBuffer copy_out(const void *data, size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  if (n) memcpy(p, data, n);
  return (PluginBuffer){.ptr = p, .len = n, .cap = n ? n : 1};
}

static int32_t info(PluginBuffer *out) {
  /* AdapterInfo { name: "probe", version: "1.0.0" } */
  static const uint8_t bytes[] = {0x0a, 5, 'p', 'r', 'o', 'b', 'e', 0x12, 5, '1', '.', '0', '.', '0'};
  *out = copy_out(bytes, sizeof bytes);
  return TRIBUTARY_STATUS_OK;
}

static int32_t create(const uint8_t *args, size_t len, void **instance, PluginBuffer *msg) {
  (void)args;
  (void)len;
  *instance = malloc(1);
  *msg = (PluginBuffer){0};
  return TRIBUTARY_STATUS_OK;
}

static int has_in(const uint8_t *bytes, size_t len, const char *marker) {
  return len && memmem(bytes, len, marker, strlen(marker)) != NULL;
}

static int32_t handle(const void *instance, const RequestView *request, PluginBuffer *out) {
  (void)instance;
  const uint8_t *body = request->body.ptr;
  size_t len = request->body.len;
#define has(request, len, marker) has_in(body, len, marker)
  if (has(request, len, "GARBAGE")) {
    static const uint8_t garbage[] = {0xff, 0xff, 0xff};
    *out = copy_out(garbage, sizeof garbage);
    return TRIBUTARY_STATUS_OK;
  }
  if (has(request, len, "NO-OUTCOME")) {
    *out = (PluginBuffer){0};
    return TRIBUTARY_STATUS_OK;
  }
  if (has(request, len, "FAIL")) {
    *out = copy_out("configured to fail", 18);
    return TRIBUTARY_STATUS_ERROR;
  }
  if (has(request, len, "SLEEP")) usleep(300000);
  /* AdapterResult { normalized: Normalized {} } */
  static const uint8_t normalized[] = {0x0a, 0x00};
  *out = copy_out(normalized, sizeof normalized);
  return TRIBUTARY_STATUS_OK;
}

static void free_buffer(PluginBuffer buffer) { free(buffer.ptr); }

static void destroy(void *instance) { free(instance); }

static const AdapterVTableV2 VTABLE = {
    .abi_version = TRIBUTARY_ABI_VERSION,
    .size = sizeof(AdapterVTableV2),
    .info = info,
    .create = create,
    .handle = handle,
    .free_buffer = free_buffer,
    .destroy = destroy,
};

const struct AdapterVTableV2 *tributary_adapter_v2(void) { return &VTABLE; }
uint32_t tributary_abi_version(void) { return TRIBUTARY_ABI_VERSION; }
"#;

/// Builds [`PROBE_PLUGIN`] as `lib<name>.so` in `dir`.
pub fn build_probe(dir: &Path, name: &str) -> PathBuf {
    build_c_library(dir, name, PROBE_PLUGIN)
}
