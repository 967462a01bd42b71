/*
 * A Tributary adapter written in C, for Quokka Pay (a made-up provider).
 *
 * Quokka Pay POSTs one flat JSON object per webhook and authenticates it with a shared token
 * in the `x-quokka-token` header:
 *   {"id": "qk_evt_1", "kind": "consent.granted", "consent": "qc_9", "at": 1714564800}
 * kind "consent.granted" / "consent.revoked" become canonical consent events; any other kind is
 * dead-lettered as an unmapped item; a body without "id" or "kind" is rejected as malformed.
 *
 * Fail closed: until `"verification": {"secrets": [...]}` lists a token every webhook is
 * rejected as unauthenticated (401). Only `"verification": {"disabled": true}` (local testing)
 * accepts webhooks without a token, with a start-up warning; it cannot be combined with
 * secrets. Each entry of "secrets" is a token, or {"secret", "label", "not_after" (RFC 3339)}:
 * a token verifies until its not_after (to the second), so an old and a new one overlap while
 * Quokka Pay rotates; the result names the one that verified (position and label), and
 * `instance_info` reports the verification state. The old "token" key is still read, with a
 * deprecation warning.
 *
 * Only the C ABI (tributary_plugin.h, generated from the Rust definitions: the request arrives
 * as a RequestView struct) and hand-written protobuf encoding of the result are used: no Rust,
 * no libraries. Build:
 *   cc -shared -fPIC -O2 -Wall -Wextra -I../../crates/plugin-abi/include -o libquokka.so quokka.c
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef QUOKKA_SLEEP_MS
#include <unistd.h>
#endif
#include <time.h>

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

/* Copies the JSON string starting at v (at its opening quote) into out (at most cap-1 bytes).
 * 0 when v is not a complete string. */
static int json_string_at(const char *v, char *out, size_t cap) {
  if (*v != '"') return 0;
  size_t n = 0;
  for (v++; *v && *v != '"'; v++) {
    if (*v == '\\' && v[1]) v++;
    if (n + 1 < cap) out[n++] = *v;
  }
  out[n] = 0;
  return *v == '"';
}

/* Just past the JSON value at v (object, array, string or scalar); NULL when unterminated. */
static const char *json_skip(const char *v) {
  if (*v == '"') {
    for (v++; *v && *v != '"'; v++)
      if (*v == '\\' && v[1]) v++;
    return *v ? v + 1 : NULL;
  }
  if (*v == '{' || *v == '[') {
    int depth = 0;
    while (*v) {
      if (*v == '"') {
        v = json_skip(v);
        if (!v) return NULL;
        continue;
      }
      if (*v == '{' || *v == '[') depth++;
      if ((*v == '}' || *v == ']') && --depth == 0) return v + 1;
      v++;
    }
    return NULL;
  }
  while (*v && *v != ',' && *v != '}' && *v != ']') v++;
  return v;
}

/* A NUL-terminated copy of the JSON value at v, or NULL. The caller frees it. */
static char *json_copy(const char *v) {
  const char *end = json_skip(v);
  if (!end) return NULL;
  size_t n = (size_t)(end - v);
  char *copy = malloc(n + 1);
  if (!copy) return NULL;
  memcpy(copy, v, n);
  copy[n] = 0;
  return copy;
}

/* Days from 1970-01-01 to a civil date (proleptic Gregorian). */
static long long days_from_civil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  long long era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned mp = m > 2 ? m - 3 : m + 9;
  unsigned doy = (153 * mp + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (long long)doe - 719468;
}

/* Unix seconds of an RFC 3339 time "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" (the
 * fraction is dropped). 0 when it does not parse. */
static int parse_rfc3339(const char *text, long long *out) {
  int y, mo, d, h, mi, sec, n = 0;
  if (sscanf(text, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || !n)
    return 0;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return 0;
  const char *p = text + n;
  if (*p == '.') {
    if (!isdigit((unsigned char)p[1])) return 0;
    for (p++; isdigit((unsigned char)*p); p++) {}
  }
  long long offset = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om, m = 0;
    if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5 || oh > 23 || om > 59) return 0;
    offset = (oh * 60LL + om) * 60;
    if (*p == '-') offset = -offset;
    p += 6;
  } else {
    return 0;
  }
  if (*p) return 0;
  *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600LL + mi * 60LL + sec - offset;
  return 1;
}

/* ---- the adapter ---------------------------------------------------------------------- */

#define MAX_SECRETS 16

typedef struct {
  char secret[256];
  char label[65];
  long long not_after; /* Unix seconds, when has_not_after */
  int has_not_after;
} secret;

typedef struct {
  secret secrets[MAX_SECRETS];
  size_t count;
  int disabled; /* verification switched off explicitly */
  int legacy;   /* the deprecated "token" key was used */
} quokka;

/* One entry of "secrets" at v (a string or a flat object) into s. An error message or NULL. */
static const char *read_secret(const char *v, secret *s) {
  if (*v == '"') return json_string_at(v, s->secret, sizeof s->secret) ? NULL : "not a string";
  if (*v != '{') return "each entry is a token or {\"secret\", \"label\", \"not_after\"}";
  char *entry = json_copy(v);
  if (!entry) return "an unterminated table";
  char when[64];
  const char *error = NULL;
  json_string(entry, "secret", s->secret, sizeof s->secret);
  json_string(entry, "label", s->label, sizeof s->label);
  if (json_string(entry, "not_after", when, sizeof when)) {
    s->has_not_after = 1;
    if (!parse_rfc3339(when, &s->not_after))
      error = "not_after is not an RFC 3339 time such as \"2026-12-31T00:00:00Z\"";
  }
  free(entry);
  return error;
}

/* Reads "verification" ({"secrets": [...]} or {"disabled": true}) and the deprecated "token"
 * from the config object. 0 and a message in `error` when the config is refused. */
static int read_config(const char *config, quokka *q, char *error, size_t cap) {
  const char *v = json_value(config, "verification");
  char *verification = v && *v == '{' ? json_copy(v) : NULL;
  if (verification) {
    const char *d = json_value(verification, "disabled");
    q->disabled = d && strncmp(d, "true", 4) == 0;
    const char *p = json_value(verification, "secrets");
    if (p && *p == '[') {
      for (p++;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
        if (*p == ']' || !*p) break;
        if (q->count == MAX_SECRETS) {
          snprintf(error, cap, "verification.secrets: at most %d entries", MAX_SECRETS);
          free(verification);
          return 0;
        }
        secret *s = &q->secrets[q->count];
        const char *problem = read_secret(p, s);
        if (!problem && !s->secret[0]) problem = "the secret must not be empty";
        const char *next = json_skip(p);
        if (!problem && !next) problem = "unterminated";
        if (problem) {
          snprintf(error, cap, "verification.secrets[%zu]: %s", q->count, problem);
          free(verification);
          return 0;
        }
        q->count++;
        p = next;
      }
    }
    free(verification);
  }
  char token[256];
  if (json_string(config, "token", token, sizeof token) && token[0]) {
    if (q->count) {
      snprintf(error, cap, "`token` and `verification.secrets` are both set: keep only verification.secrets");
      return 0;
    }
    memcpy(q->secrets[0].secret, token, sizeof token);
    q->count = 1;
    q->legacy = 1;
  }
  if (q->disabled && q->count) {
    snprintf(error, cap, "verification.disabled = true cannot be combined with verification secrets: remove one of them");
    return 0;
  }
  return 1;
}

/* Appends a line to the start-up warnings. */
static void warn(buf *b, const char *line) {
  if (b->len) put(b, "\n", 1);
  put(b, line, strlen(line));
}

/* SecretInfo {index, label, not_after} of secret i as field `field` of b. */
static void secret_info(buf *b, unsigned field, const quokka *q, size_t i) {
  buf info = {0}, end = {0};
  field_varint(&info, 1, i);                     /* SecretInfo.index */
  field_string(&info, 2, q->secrets[i].label);   /* .label */
  if (q->secrets[i].has_not_after) {
    field_varint(&end, 1, (uint64_t)q->secrets[i].not_after); /* Timestamp.seconds */
    field_message(&info, 3, &end);               /* .not_after */
  }
  field_message(b, field, &info);
}

static int32_t info(PluginBuffer *out) {
  buf b = {0};
  field_string(&b, 1, "quokka");            /* AdapterInfo.name */
  field_string(&b, 2, QUOKKA_VERSION);      /* .version */
  field_string(&b, 3, "Quokka Pay");        /* .provider */
  field_string(&b, 4, "Quokka Pay consent webhooks (example adapter written in C)");
  /* .display_fields: keys whose values an operator may see in a raw body; the rest is masked */
  field_string(&b, 6, "id");
  field_string(&b, 6, "kind");
  field_string(&b, 6, "consent");
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
  char error[256];
  int ok = !(config && *config == '{') || read_config(config, q, error, sizeof error);
  free(json);
  if (!ok) {
    free(q);
    *msg = message(error);
    return TRIBUTARY_STATUS_ERROR;
  }
  *instance = q;
  buf warnings = {0};
  if (q->legacy)
    warn(&warnings, "quokka: the config key `token` is deprecated and still read: move its value "
                    "to `verification.secrets`");
  if (q->disabled)
    warn(&warnings, "quokka: webhook verification is switched off (verification.disabled = true): "
                    "anyone who can reach the endpoint can inject events");
  else if (!q->count)
    warn(&warnings, "quokka: no token configured: every webhook is rejected (401) until "
                    "`verification.secrets` lists one");
  long long now = (long long)time(NULL);
  for (size_t i = 0; i < q->count; i++) {
    if (q->secrets[i].has_not_after && q->secrets[i].not_after < now) {
      char line[160];
      snprintf(line, sizeof line,
               "quokka: verification.secrets[%zu] is past its not_after and no longer verifies: "
               "remove it", i);
      warn(&warnings, line);
    }
  }
  *msg = to_plugin_buffer(warnings);
  return TRIBUTARY_STATUS_OK;
}

/* InstanceInfo: the verification state (1 on, 2 not configured, 3 switched off) and each
 * secret's position, label and end (never its value). */
static int32_t instance_info(const void *instance, PluginBuffer *out) {
  const quokka *q = instance;
  if (!q) {
    *out = message("no instance");
    return TRIBUTARY_STATUS_ERROR;
  }
  buf b = {0};
  field_varint(&b, 1, q->disabled ? 3 : q->count ? 1 : 2); /* InstanceInfo.verification */
  for (size_t i = 0; i < q->count; i++) secret_info(&b, 2, q, i); /* .secrets */
  *out = to_plugin_buffer(b);
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

/* An AdapterResult; `by` is the position of the secret that verified the request, or -1. */
static int32_t result(PluginBuffer *out, unsigned outcome_field, buf *outcome, const quokka *q,
                      long by) {
  buf b = {0};
  field_message(&b, outcome_field, outcome); /* AdapterResult.normalized = 1 / .rejection = 2 */
  if (q && by >= 0) secret_info(&b, 4, q, (size_t)by); /* AdapterResult.verified_by */
  *out = to_plugin_buffer(b);
  return TRIBUTARY_STATUS_OK;
}

static int32_t reject(PluginBuffer *out, int kind, const char *reason) {
  buf r = {0};
  field_varint(&r, 1, kind);     /* Rejection.kind: 1 unauthenticated, 2 malformed */
  field_string(&r, 2, reason);
  return result(out, 2, &r, NULL, -1);
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
  long by = -1; /* the secret that verified the request */
  if (!q->disabled && !(r->flags & TRIBUTARY_REQUEST_SKIP_VERIFICATION)) {
    if (!q->count) return reject(out, 1, "no token configured");
    long long now = (r->flags & TRIBUTARY_REQUEST_HAS_RECEIVED_AT) ? r->received_at_seconds
                                                                    : (long long)time(NULL);
    const ByteSlice *token = token_header(r);
    /* Every token still valid is compared (in constant time); the first match is named. */
    for (size_t i = 0; token && i < q->count; i++) {
      const secret *s = &q->secrets[i];
      if (s->has_not_after && now > s->not_after) continue;
      if (constant_time_equal(token->ptr, token->len, s->secret) && by < 0) by = (long)i;
    }
    if (by < 0) return reject(out, 1, "missing or wrong x-quokka-token");
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
    return result(out, 1, &normalized, q, by);
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
  return result(out, 1, &normalized, q, by);
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
    .instance_info = instance_info,
};

const struct AdapterVTableV2 *tributary_adapter_v2(void) { return &VTABLE; }

uint32_t tributary_abi_version(void) { return TRIBUTARY_ABI_VERSION; }
