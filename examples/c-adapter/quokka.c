/*
 * A Tributary adapter written in C, for Quokka Pay (a made-up provider).
 *
 * Quokka Pay POSTs one flat JSON object per webhook and authenticates it with a shared token
 * in the `x-quokka-token` header:
 *   {"id": "qk_evt_1", "kind": "consent.granted", "consent": "qc_9", "at": 1714564800}
 * kind "consent.granted" / "consent.revoked" become canonical consent events; any other kind is
 * dead-lettered as an unmapped item; a body without "id" or "kind" is rejected as malformed.
 *
 * Fail closed: without a configured "token" every webhook is rejected as unauthenticated (401).
 * Only `"verification": {"disabled": true}` (local testing) accepts webhooks without a token,
 * with a start-up warning; it cannot be combined with a token.
 *
 * Only the C ABI (tributary_plugin.h, generated from the Rust definitions: the request arrives
 * as a RequestView struct) and hand-written protobuf encoding of the result are used: no Rust,
 * no libraries. Build:
 *   cc -shared -fPIC -O2 -Wall -Wextra -I../../crates/plugin-abi/include -o libquokka.so quokka.c
 */
#include <stdlib.h>
#include <string.h>
#ifdef QUOKKA_SLEEP_MS
#include <unistd.h>
#endif

#include "tributary_plugin.h"

#ifndef QUOKKA_VERSION
#define QUOKKA_VERSION "1.0.0"
#endif

/* ---- a growable byte buffer and protobuf encoding ------------------------------------- */

typedef struct { uint8_t *p; size_t len, cap; } buf;

static void put(buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) abort(); /* out of memory: nothing sensible to return */
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void put_varint(buf *b, uint64_t v) {
  uint8_t byte;
  do {
    byte = v & 0x7f;
    v >>= 7;
    if (v) byte |= 0x80;
    put(b, &byte, 1);
  } while (v);
}

/* Field with wire type 0 (varint); zero is the default and is omitted. */
static void field_varint(buf *b, unsigned field, uint64_t v) {
  if (!v) return;
  put_varint(b, (uint64_t)field << 3);
  put_varint(b, v);
}

/* Field with wire type 2 (bytes, string, embedded message); empty strings are omitted. */
static void field_bytes(buf *b, unsigned field, const void *data, size_t n) {
  put_varint(b, ((uint64_t)field << 3) | 2);
  put_varint(b, n);
  put(b, data, n);
}

static void field_string(buf *b, unsigned field, const char *s) {
  if (s && *s) field_bytes(b, field, s, strlen(s));
}

static void field_message(buf *b, unsigned field, buf *sub) {
  field_bytes(b, field, sub->p, sub->len);
  free(sub->p);
  *sub = (buf){0};
}

static PluginBuffer to_plugin_buffer(buf b) {
  return (PluginBuffer){.ptr = b.p, .len = b.len, .cap = b.cap};
}

static PluginBuffer message(const char *text) {
  buf b = {0};
  put(&b, text, strlen(text));
  return to_plugin_buffer(b);
}

/* ---- a minimal reader for flat JSON objects ------------------------------------------- */

/* Finds `"key"` followed by ':' and returns a pointer to the value, or NULL. */
static const char *json_value(const char *json, const char *key) {
  size_t klen = strlen(key);
  for (const char *p = strchr(json, '"'); p; p = strchr(p + 1, '"')) {
    if (strncmp(p + 1, key, klen) == 0 && p[1 + klen] == '"') {
      const char *v = p + 2 + klen;
      while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
      if (*v != ':') continue;
      v++;
      while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
      return v;
    }
  }
  return NULL;
}

/* Copies the string value of `key` into out (at most cap-1 bytes). 0 when absent. */
static int json_string(const char *json, const char *key, char *out, size_t cap) {
  const char *v = json_value(json, key);
  if (!v || *v != '"') return 0;
  size_t n = 0;
  for (v++; *v && *v != '"'; v++) {
    if (*v == '\\' && v[1]) v++;
    if (n + 1 < cap) out[n++] = *v;
  }
  out[n] = 0;
  return *v == '"';
}

static long long json_integer(const char *json, const char *key) {
  const char *v = json_value(json, key);
  return v ? strtoll(v, NULL, 10) : 0;
}

/* Whether `"verification": {"disabled": true}` is set in the config object: the literal `true`
 * for "disabled" inside the "verification" object (up to its first '}'; it holds no nested
 * objects). Anything else keeps verification on. */
static int verification_disabled(const char *config) {
  const char *v = json_value(config, "verification");
  if (!v || *v != '{') return 0;
  const char *end = strchr(v, '}');
  const char *d = json_value(v, "disabled");
  return d && end && d < end && strncmp(d, "true", 4) == 0;
}

/* ---- the adapter ---------------------------------------------------------------------- */

typedef struct {
  char token[256];
  int disabled; /* verification switched off explicitly */
} quokka;

static int32_t info(PluginBuffer *out) {
  buf b = {0};
  field_string(&b, 1, "quokka");            /* AdapterInfo.name */
  field_string(&b, 2, QUOKKA_VERSION);      /* .version */
  field_string(&b, 3, "Quokka Pay");        /* .provider */
  field_string(&b, 4, "Quokka Pay consent webhooks (example adapter written in C)");
  *out = to_plugin_buffer(b);
  return TRIBUTARY_STATUS_OK;
}

static int32_t create(const uint8_t *args, size_t args_len, void **instance, PluginBuffer *msg) {
  char *json = calloc(args_len + 1, 1);
  quokka *q = calloc(1, sizeof *q);
  if (!json || !q) {
    free(json);
    free(q);
    *msg = message("out of memory");
    return TRIBUTARY_STATUS_ERROR;
  }
  if (args_len) memcpy(json, args, args_len);
  const char *config = json_value(json, "config");
  if (config && *config == '{') {
    json_string(config, "token", q->token, sizeof q->token);
    q->disabled = verification_disabled(config);
  }
  free(json);
  if (q->disabled && q->token[0]) {
    free(q);
    *msg = message("verification.disabled = true cannot be combined with a token: remove one of them");
    return TRIBUTARY_STATUS_ERROR;
  }
  *instance = q;
  if (q->disabled)
    *msg = message("quokka: webhook verification is switched off (verification.disabled = true): "
                   "anyone who can reach the endpoint can inject events");
  else if (!q->token[0])
    *msg = message("quokka: no token configured: every webhook is rejected (401) until `token` is set");
  else
    *msg = message("");
  return TRIBUTARY_STATUS_OK;
}

/* The x-quokka-token header of the request, or NULL. */
static const ByteSlice *token_header(const RequestView *r) {
  for (size_t i = 0; i < r->headers_len; i++) {
    const HeaderView *h = &r->headers[i];
    if (h->name.len == 14 && memcmp(h->name.ptr, "x-quokka-token", 14) == 0) return &h->value;
  }
  return NULL;
}

static int32_t result(PluginBuffer *out, unsigned outcome_field, buf *outcome) {
  buf b = {0};
  field_message(&b, outcome_field, outcome); /* AdapterResult.normalized = 1 / .rejection = 2 */
  *out = to_plugin_buffer(b);
  return TRIBUTARY_STATUS_OK;
}

static int32_t reject(PluginBuffer *out, int kind, const char *reason) {
  buf r = {0};
  field_varint(&r, 1, kind);     /* Rejection.kind: 1 unauthenticated, 2 malformed */
  field_string(&r, 2, reason);
  return result(out, 2, &r);
}

static int constant_time_equal(const uint8_t *a, size_t a_len, const char *b) {
  size_t b_len = strlen(b);
  unsigned char diff = a_len != b_len;
  for (size_t i = 0; i < a_len && i < b_len; i++) diff |= a[i] ^ (uint8_t)b[i];
  return diff == 0;
}

/* The request is a view of the host's memory, valid during this call only. */
static int32_t handle(const void *instance, const RequestView *r, PluginBuffer *out) {
  const quokka *q = instance;
  if (!q || !r) {
    *out = message("no instance or request");
    return TRIBUTARY_STATUS_ERROR;
  }
#ifdef QUOKKA_PANICS
  /* A broken release (the shadow tests load it as a candidate): every call reports a panic. */
  *out = message("candidate panicked");
  return TRIBUTARY_STATUS_PANIC;
#endif
#ifdef QUOKKA_SLEEP_MS
  /* A slow release (the shadow tests load it as a candidate). */
  usleep(QUOKKA_SLEEP_MS * 1000);
#endif
  if (!q->disabled && !(r->flags & TRIBUTARY_REQUEST_SKIP_VERIFICATION)) {
    if (!q->token[0]) return reject(out, 1, "no token configured");
    const ByteSlice *token = token_header(r);
    if (!(token && constant_time_equal(token->ptr, token->len, q->token)))
      return reject(out, 1, "missing or wrong x-quokka-token");
  }

  char *json = calloc(r->body.len + 1, 1);
  if (!json) {
    *out = message("out of memory");
    return TRIBUTARY_STATUS_ERROR;
  }
  if (r->body.len) memcpy(json, r->body.ptr, r->body.len);
  char id[128], kind[64], consent[128];
  int status = 0;
  const char *start = json;
  while (*start == ' ' || *start == '\n' || *start == '\r' || *start == '\t') start++;
  int ok = *start == '{' && json_string(json, "id", id, sizeof id) &&
           json_string(json, "kind", kind, sizeof kind);
  if (ok && !json_string(json, "consent", consent, sizeof consent)) consent[0] = 0;
#ifdef QUOKKA_MAPS_REASON
  /* A later release maps the provider's "reason" (the replay test loads it). */
  char reason[128];
  if (!ok || !json_string(json, "reason", reason, sizeof reason)) reason[0] = 0;
#endif
  long long at = ok ? json_integer(json, "at") : 0;
  free(json);
  if (!ok) return reject(out, 2, "not a Quokka Pay webhook: \"id\" and \"kind\" are required");

  if (strcmp(kind, "consent.granted") == 0) status = 1;      /* CONSENT_STATUS_GRANTED */
  else if (strcmp(kind, "consent.revoked") == 0) status = 3; /* CONSENT_STATUS_REVOKED */
#ifdef QUOKKA_MAPS_EXPIRED
  /* A later release learned "consent.expired" (the redrive test loads it as the fix). */
  else if (strcmp(kind, "consent.expired") == 0) status = 4; /* CONSENT_STATUS_EXPIRED */
#endif

  buf normalized = {0};
  if (!status) {
    buf item = {0}; /* UnmappedItem: dead-lettered with the raw body */
    field_string(&item, 1, id);
    field_string(&item, 2, kind);
    field_string(&item, 3, "unknown kind");
    field_message(&normalized, 2, &item); /* Normalized.unmapped */
    return result(out, 1, &normalized);
  }
  buf event = {0}, provenance = {0}, payload = {0}, time = {0};
  field_string(&event, 3, kind);    /* Event.type */
  field_string(&event, 4, consent); /* Event.subject */
  if (at > 0) {
    field_varint(&time, 1, (uint64_t)at); /* Timestamp.seconds */
    field_message(&event, 5, &time);      /* Event.time */
  }
  field_string(&provenance, 3, id);   /* Provenance.provider_event_id */
  field_string(&provenance, 4, kind); /* Provenance.provider_event_type */
  field_message(&event, 12, &provenance);
  field_varint(&payload, 1, status);     /* ConsentEvent.status */
  field_string(&payload, 2, consent);    /* ConsentEvent.consent_id */
#ifdef QUOKKA_MAPS_REASON
  if (reason[0]) field_string(&payload, 8, reason); /* ConsentEvent.reason */
#endif
  field_message(&event, 29, &payload);   /* Event.consent */
  field_message(&normalized, 1, &event); /* Normalized.events */
  return result(out, 1, &normalized);
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
