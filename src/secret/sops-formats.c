/* The document formats sops encrypts, read into and written from one tree: YAML
 * (libyaml; scalar types resolved as yaml.v3, which sops uses, resolves them: the
 * YAML 1.2 core schema), JSON (jansson, numbers as sops reads them: integers that fit
 * int64, otherwise floats) and dotenv (KEY=value lines, "\n" escaped, sops metadata
 * flattened). Comments are not read: they never enter the MAC. */
#include "secret/sops-tree.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <yaml.h>

#include "base/macro.h"

sops_node *sops_node_new(sops_kind kind) {
    sops_node *n = calloc(1, sizeof(*n));
    if (n)
        n->kind = kind;
    return n;
}

int sops_node_add(sops_node *parent, sops_node *kid) {
    sops_node **m = realloc(parent->kids, (parent->n_kids + 1) * sizeof(*m));
    if (!m)
        return -ENOMEM;
    parent->kids = m;
    parent->kids[parent->n_kids++] = kid;
    return 0;
}

void sops_node_free(sops_node *n) {
    if (!n)
        return;
    for (size_t i = 0; i < n->n_kids; i++)
        sops_node_free(n->kids[i]);
    free(n->kids);
    free(n->key);
    if (n->text && n->plain)
        OPENSSL_cleanse(n->text, n->len);
    free(n->text);
    free(n);
}

sops_node *sops_node_get(const sops_node *map, const char *key) {
    if (!map || map->kind != SOPS_MAP)
        return NULL;
    for (size_t i = 0; i < map->n_kids; i++)
        if (map->kids[i]->key && streq(map->kids[i]->key, key))
            return map->kids[i];
    return NULL;
}

static sops_node *scalar_new(sops_type type, const char *text, size_t len) {
    sops_node *n = sops_node_new(SOPS_SCALAR);
    if (!n)
        return NULL;
    n->type = type;
    n->text = strndup(text, len);
    n->len = len;
    if (!n->text) {
        free(n);
        return NULL;
    }
    return n;
}

/* ---- YAML ---- */

static bool full_match(const char *re, const char *s) {
    regex_t r;
    if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    bool m = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return m;
}

/* The type yaml.v3 gives a plain (unquoted) scalar read into an interface{}. */
static sops_type resolve_plain(const char *s) {
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE"};
    for (size_t i = 0; i < ELEMENTSOF(nulls); i++)
        if (streq(s, nulls[i]))
            return SOPS_NULL;
    for (size_t i = 0; i < ELEMENTSOF(bools); i++)
        if (streq(s, bools[i]))
            return SOPS_BOOL;
    if (full_match("^[-+]?[0-9]+$", s) || full_match("^0x[0-9a-fA-F]+$", s) || full_match("^0o[0-7]+$", s))
        return SOPS_INT;
    if (full_match("^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$", s) ||
        full_match("^[-+]?\\.(inf|Inf|INF)$", s) || full_match("^\\.(nan|NaN|NAN)$", s))
        return SOPS_FLOAT;
    return SOPS_STR;
}

static int yaml_convert(yaml_document_t *doc, yaml_node_t *y, int depth, sops_node **ret, seed_error **err) {
    if (depth > 64)
        return seed_error_set(err, EINVAL, "YAML nested deeper than 64 levels");
    _cleanup_(sops_node_freep) sops_node *n = NULL;
    switch (y->type) {
    case YAML_SCALAR_NODE: {
        const char *t = (const char *)y->data.scalar.value;
        size_t l = y->data.scalar.length;
        if (strlen(t) != l)
            return seed_error_set(err, EINVAL, "YAML scalar holds a NUL byte");
        n = scalar_new(y->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? resolve_plain(t) : SOPS_STR, t, l);
        if (!n)
            return -ENOMEM;
        break;
    }
    case YAML_SEQUENCE_NODE:
        n = sops_node_new(SOPS_LIST);
        if (!n)
            return -ENOMEM;
        for (yaml_node_item_t *i = y->data.sequence.items.start; i < y->data.sequence.items.top; i++) {
            sops_node *kid = NULL;
            int r = yaml_convert(doc, yaml_document_get_node(doc, *i), depth + 1, &kid, err);
            if (r < 0)
                return r;
            if (sops_node_add(n, kid) < 0) {
                sops_node_free(kid);
                return -ENOMEM;
            }
        }
        break;
    case YAML_MAPPING_NODE:
        n = sops_node_new(SOPS_MAP);
        if (!n)
            return -ENOMEM;
        for (yaml_node_pair_t *p = y->data.mapping.pairs.start; p < y->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE)
                return seed_error_set(err, EINVAL,
                                      "YAML mapping key is not a scalar (sops only has string keys)");
            sops_node *kid = NULL;
            int r = yaml_convert(doc, yaml_document_get_node(doc, p->value), depth + 1, &kid, err);
            if (r < 0)
                return r;
            kid->key = strdup((const char *)k->data.scalar.value);
            if (!kid->key || sops_node_add(n, kid) < 0) {
                sops_node_free(kid);
                return -ENOMEM;
            }
        }
        break;
    default:
        return seed_error_set(err, EINVAL, "YAML node of an unknown kind");
    }
    *ret = TAKE_PTR(n);
    return 0;
}

static int load_yaml(const char *data, size_t len, sops_node **ret, seed_error **err) {
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) {
        int r = seed_error_set(err, EINVAL, "not valid YAML: %s at line %zu",
                               parser.problem ? parser.problem : "?", parser.problem_mark.line + 1);
        yaml_parser_delete(&parser);
        return r;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int r = 0;
    if (!root || root->type != YAML_MAPPING_NODE)
        r = seed_error_set(err, EINVAL,
                           "the YAML document is not a mapping (a sops file maps keys to values)");
    else
        r = yaml_convert(&doc, root, 0, ret, err);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return r;
}

/* ---- JSON ---- */

/* Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that read back as v,
 * written without an exponent. */
static int format_go_float(double v, char **ret) {
    if (v != v)
        return (*ret = strdup("NaN")) ? 0 : -ENOMEM;
    if (v > 1.7976931348623157e308 || v < -1.7976931348623157e308)
        return (*ret = strdup(v > 0 ? "+Inf" : "-Inf")) ? 0 : -ENOMEM;
    char e[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    /* e is [-]D[.DDD]e[+-]XX */
    bool neg = e[0] == '-';
    char digits[24];
    size_t nd = 0;
    const char *p = e + neg;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    char *out = malloc(nd + 400);
    if (!out)
        return -ENOMEM;
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (exp < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -exp - 1; i++)
            out[o++] = '0';
        memcpy(out + o, digits, nd);
        o += nd;
    } else {
        for (int i = 0; i <= exp; i++)
            out[o++] = (size_t)i < nd ? digits[i] : '0';
        if ((size_t)exp + 1 < nd) {
            out[o++] = '.';
            memcpy(out + o, digits + exp + 1, nd - (size_t)exp - 1);
            o += nd - (size_t)exp - 1;
        }
    }
    out[o] = 0;
    *ret = out;
    return 0;
}

static int json_convert(json_t *j, int depth, sops_node **ret, seed_error **err) {
    if (depth > 64)
        return seed_error_set(err, EINVAL, "JSON nested deeper than 64 levels");
    _cleanup_(sops_node_freep) sops_node *n = NULL;
    char buf[32];
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        n = sops_node_new(SOPS_MAP);
        if (!n)
            return -ENOMEM;
        const char *k;
        json_t *v;
        json_object_foreach (j, k, v) {
            sops_node *kid = NULL;
            int r = json_convert(v, depth + 1, &kid, err);
            if (r < 0)
                return r;
            kid->key = strdup(k);
            if (!kid->key || sops_node_add(n, kid) < 0) {
                sops_node_free(kid);
                return -ENOMEM;
            }
        }
        break;
    }
    case JSON_ARRAY: {
        n = sops_node_new(SOPS_LIST);
        if (!n)
            return -ENOMEM;
        size_t i;
        json_t *v;
        json_array_foreach (j, i, v) {
            sops_node *kid = NULL;
            int r = json_convert(v, depth + 1, &kid, err);
            if (r < 0)
                return r;
            if (sops_node_add(n, kid) < 0) {
                sops_node_free(kid);
                return -ENOMEM;
            }
        }
        break;
    }
    case JSON_STRING:
        if (strlen(json_string_value(j)) != json_string_length(j))
            return seed_error_set(err, EINVAL, "JSON string holds a NUL character");
        n = scalar_new(SOPS_STR, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        n = scalar_new(SOPS_INT, buf, strlen(buf));
        break;
    case JSON_REAL: {
        _cleanup_free_ char *f = NULL;
        if (format_go_float(json_real_value(j), &f) < 0)
            return -ENOMEM;
        n = scalar_new(SOPS_FLOAT, f, strlen(f));
        break;
    }
    case JSON_TRUE:
    case JSON_FALSE:
        n = scalar_new(SOPS_BOOL, json_is_true(j) ? "true" : "false", json_is_true(j) ? 4 : 5);
        break;
    case JSON_NULL:
        n = scalar_new(SOPS_NULL, "", 0);
        break;
    }
    if (!n)
        return -ENOMEM;
    *ret = TAKE_PTR(n);
    return 0;
}

static int load_json(const char *data, size_t len, sops_node **ret, seed_error **err) {
    json_error_t je;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return seed_error_set(err, EINVAL, "not valid JSON: %s at line %d", je.text, je.line);
    int r = json_is_object(j) ? json_convert(j, 0, ret, err)
                              : seed_error_set(err, EINVAL, "the JSON document is not an object");
    json_decref(j);
    return r;
}

/* ---- dotenv ---- */

/* Place value at a flattened key ("age__list_0__map_enc") below root, creating the
 * maps and lists on the way. */
static int unflatten(sops_node *root, const char *flat, sops_node *value, seed_error **err) {
    sops_node *cur = root;
    const char *p = flat;
    bool is_index = false;
    for (;;) {
        const char *m = strstr(p, "__map_"), *l = strstr(p, "__list_");
        const char *next = m && (!l || m < l) ? m : l;
        size_t tl = next ? (size_t)(next - p) : strlen(p);
        _cleanup_free_ char *tok = strndup(p, tl);
        if (!tok)
            return -ENOMEM;
        sops_node *child = NULL;
        if (is_index) {
            char *end;
            unsigned long idx = strtoul(tok, &end, 10);
            if (*end || !*tok || cur->kind != SOPS_LIST || idx > cur->n_kids)
                return seed_error_set(err, EINVAL, "sops metadata key sops_%s: bad list index", flat);
            if (idx < cur->n_kids)
                child = cur->kids[idx];
        } else {
            if (cur->kind != SOPS_MAP)
                return seed_error_set(err, EINVAL, "sops metadata key sops_%s mixes lists and maps", flat);
            child = sops_node_get(cur, tok);
        }
        if (!next) {
            if (child)
                return seed_error_set(err, EINVAL, "sops metadata key sops_%s appears twice", flat);
            if (!is_index)
                value->key = TAKE_PTR(tok);
            return sops_node_add(cur, value);
        }
        sops_kind want = next == m ? SOPS_MAP : SOPS_LIST;
        if (!child) {
            child = sops_node_new(want);
            if (!child)
                return -ENOMEM;
            if (!is_index)
                child->key = TAKE_PTR(tok);
            if (sops_node_add(cur, child) < 0) {
                sops_node_free(child);
                return -ENOMEM;
            }
        } else if (child->kind != want)
            return seed_error_set(err, EINVAL, "sops metadata key sops_%s mixes lists and maps", flat);
        cur = child;
        is_index = next == l;
        p = next + (next == m ? 6 : 7);
    }
}

static int load_dotenv(const char *data, size_t len, sops_node **ret, seed_error **err) {
    _cleanup_(sops_node_freep) sops_node *root = sops_node_new(SOPS_MAP);
    sops_node *meta = sops_node_new(SOPS_MAP);
    if (!root || !meta || !(meta->key = strdup("sops")) || sops_node_add(root, meta) < 0) {
        sops_node_free(meta);
        return -ENOMEM;
    }
    size_t line_no = 0;
    for (size_t p = 0; p < len;) {
        const char *nl = memchr(data + p, '\n', len - p);
        size_t l = nl ? (size_t)(nl - data - p) : len - p;
        const char *line = data + p;
        p += l + 1;
        line_no++;
        if (l == 0 || line[0] == '#')
            continue;
        const char *eq = memchr(line, '=', l);
        if (!eq)
            return seed_error_set(err, EINVAL, "dotenv line %zu has no '=' (expected KEY=VALUE)", line_no);
        /* The value with "\n" (backslash, n) turned back into line feeds. */
        size_t vl = l - (size_t)(eq + 1 - line);
        _cleanup_free_ char *v = malloc(vl + 1);
        if (!v)
            return -ENOMEM;
        size_t o = 0;
        for (size_t i = 0; i < vl; i++) {
            if (eq[1 + i] == '\\' && i + 1 < vl && eq[2 + i] == 'n') {
                v[o++] = '\n';
                i++;
            } else
                v[o++] = eq[1 + i];
        }
        sops_node *n = scalar_new(SOPS_STR, v, o);
        _cleanup_free_ char *key = strndup(line, (size_t)(eq - line));
        if (!n || !key) {
            sops_node_free(n);
            return -ENOMEM;
        }
        int r;
        if (strncmp(key, "sops_", 5) == 0)
            r = unflatten(meta, key + 5, n, err);
        else if (sops_node_get(root, key))
            r = seed_error_set(err, EINVAL, "dotenv key %s appears twice", key);
        else {
            n->key = TAKE_PTR(key);
            r = sops_node_add(root, n);
        }
        if (r < 0) {
            sops_node_free(n); /* not added: still ours */
            return r;
        }
    }
    *ret = TAKE_PTR(root);
    return 0;
}

int sops_load(const char *data, size_t len, seed_sops_format f, sops_node **ret, seed_error **err) {
    switch (f) {
    case SEED_SOPS_YAML:
        return load_yaml(data, len, ret, err);
    case SEED_SOPS_JSON:
    case SEED_SOPS_BINARY:
        return load_json(data, len, ret, err);
    case SEED_SOPS_DOTENV:
        return load_dotenv(data, len, ret, err);
    }
    return -EINVAL;
}

/* ---- writing ---- */

typedef struct out_buf {
    char *data;
    size_t len, cap;
} out_buf;

static int out_put(out_buf *b, const void *d, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = MAX(b->cap * 2, b->len + n + 256);
        char *m = malloc(cap);
        if (!m)
            return -ENOMEM;
        /* Copy instead of realloc so the old buffer, which holds plaintext, is wiped. */
        if (b->data) {
            memcpy(m, b->data, b->len);
            OPENSSL_cleanse(b->data, b->cap);
            free(b->data);
        }
        b->data = m;
        b->cap = cap;
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

static int yaml_out(void *data, unsigned char *buffer, size_t size) {
    return out_put(data, buffer, size) == 0;
}

static bool is_true(const sops_node *n) {
    return streq(n->text, "true") || streq(n->text, "True") || streq(n->text, "TRUE");
}

static int yaml_emit_node(yaml_emitter_t *e, const sops_node *n) {
    yaml_event_t ev;
    if (n->kind == SOPS_SCALAR) {
        const char *t = n->text;
        yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
        if (n->type == SOPS_BOOL)
            t = is_true(n) ? "true" : "false";
        else if (n->type == SOPS_NULL)
            t = "null";
        else if (n->type == SOPS_STR) {
            if (strchr(t, '\n'))
                style = YAML_LITERAL_SCALAR_STYLE;
            else if (resolve_plain(t) != SOPS_STR)
                style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        }
        if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)t, (int)strlen(t), 1, 1, style))
            return -ENOMEM;
        return yaml_emitter_emit(e, &ev) ? 0 : -EIO;
    }
    bool map = n->kind == SOPS_MAP;
    if (map ? !yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE)
            : !yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE))
        return -ENOMEM;
    if (!yaml_emitter_emit(e, &ev))
        return -EIO;
    for (size_t i = 0; i < n->n_kids; i++) {
        const sops_node *k = n->kids[i];
        if (map) {
            if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)k->key, (int)strlen(k->key), 1,
                                              1, YAML_ANY_SCALAR_STYLE) ||
                !yaml_emitter_emit(e, &ev))
                return -EIO;
        }
        int r = yaml_emit_node(e, k);
        if (r < 0)
            return r;
    }
    if (map ? !yaml_mapping_end_event_initialize(&ev) : !yaml_sequence_end_event_initialize(&ev))
        return -ENOMEM;
    return yaml_emitter_emit(e, &ev) ? 0 : -EIO;
}

static int emit_yaml(const sops_node *root, out_buf *b) {
    yaml_emitter_t e;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&e))
        return -ENOMEM;
    yaml_emitter_set_output(&e, yaml_out, b);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    int r = -EIO;
    if (yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) && yaml_emitter_emit(&e, &ev) &&
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) && yaml_emitter_emit(&e, &ev)) {
        r = yaml_emit_node(&e, root);
        if (r == 0)
            r = yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&e, &ev) &&
                        yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&e, &ev)
                    ? 0
                    : -EIO;
    }
    yaml_emitter_delete(&e);
    return r;
}

static int indent(out_buf *b, int depth) {
    int r = out_put(b, "\n", 1);
    for (int i = 0; r == 0 && i < depth; i++)
        r = out_put(b, "    ", 4);
    return r;
}

static int emit_json_string(out_buf *b, const char *s, size_t len) {
    json_t *j = json_stringn(s, len);
    char *e = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    int r = e ? out_put(b, e, strlen(e)) : -ENOMEM;
    if (e)
        OPENSSL_cleanse(e, strlen(e));
    free(e);
    return r;
}

/* JSON written by hand so numbers keep the text sops gave them (jansson would print
 * 25.4 as 25.399999999999999). */
static int emit_json(const sops_node *n, out_buf *b, int depth) {
    int r = 0;
    if (n->kind != SOPS_SCALAR) {
        bool map = n->kind == SOPS_MAP;
        r = out_put(b, map ? "{" : "[", 1);
        for (size_t i = 0; r == 0 && i < n->n_kids; i++) {
            if (i)
                r = out_put(b, ",", 1);
            if (r == 0)
                r = indent(b, depth + 1);
            if (r == 0 && map)
                r = emit_json_string(b, n->kids[i]->key, strlen(n->kids[i]->key));
            if (r == 0 && map)
                r = out_put(b, ": ", 2);
            if (r == 0)
                r = emit_json(n->kids[i], b, depth + 1);
        }
        if (r == 0 && n->n_kids)
            r = indent(b, depth);
        return r < 0 ? r : out_put(b, map ? "}" : "]", 1);
    }
    char buf[32];
    switch (n->type) {
    case SOPS_INT: {
        const char *s = n->text;
        snprintf(buf, sizeof(buf), "%lld",
                 s[0] == '0' && s[1] == 'o' ? strtoll(s + 2, NULL, 8) : strtoll(s, NULL, 0));
        return out_put(b, buf, strlen(buf));
    }
    case SOPS_FLOAT: {
        /* JSON has no infinities or NaN: those stay strings. */
        bool finite = strspn(n->text, "+-0123456789.eE") == n->len && n->len;
        return finite ? out_put(b, n->text, n->len) : emit_json_string(b, n->text, n->len);
    }
    case SOPS_BOOL:
        return is_true(n) ? out_put(b, "true", 4) : out_put(b, "false", 5);
    case SOPS_NULL:
        return out_put(b, "null", 4);
    case SOPS_STR:
        return emit_json_string(b, n->text, n->len);
    }
    return -EINVAL;
}

int sops_emit(const sops_node *root, seed_sops_format f, char **ret, size_t *ret_len, seed_error **err) {
    out_buf b = {0};
    int r = 0;
    if (f == SEED_SOPS_YAML)
        r = emit_yaml(root, &b);
    else if (f == SEED_SOPS_JSON) {
        r = emit_json(root, &b, 0);
        if (r == 0)
            r = out_put(&b, "\n", 1);
    } else if (f == SEED_SOPS_DOTENV) {
        for (size_t i = 0; r == 0 && i < root->n_kids; i++) {
            const sops_node *k = root->kids[i];
            if (k->kind != SOPS_SCALAR) {
                r = seed_error_set(err, EINVAL, "dotenv key %s has a nested value", k->key);
                break;
            }
            r = out_put(&b, k->key, strlen(k->key));
            if (r == 0)
                r = out_put(&b, "=", 1);
            for (size_t c = 0; r == 0 && c < k->len; c++)
                r = k->text[c] == '\n' ? out_put(&b, "\\n", 2) : out_put(&b, &k->text[c], 1);
            if (r == 0)
                r = out_put(&b, "\n", 1);
        }
    } else
        r = -EINVAL;
    if (r < 0) {
        if (b.data)
            OPENSSL_cleanse(b.data, b.cap);
        free(b.data);
        return r == -EINVAL || r == -ENOMEM
                   ? r
                   : seed_error_set(err, -r, "writing the decrypted document failed");
    }
    *ret = b.data ? b.data : strdup("");
    *ret_len = b.len;
    return *ret ? 0 : -ENOMEM;
}

int sops_go_float(const char *text, char **ret) {
    if (streq(text, ".inf") || streq(text, ".Inf") || streq(text, ".INF") || streq(text, "+.inf"))
        return (*ret = strdup("+Inf")) ? 0 : -ENOMEM;
    if (streq(text, "-.inf") || streq(text, "-.Inf") || streq(text, "-.INF"))
        return (*ret = strdup("-Inf")) ? 0 : -ENOMEM;
    if (text[0] == '.' && (text[1] == 'n' || text[1] == 'N'))
        return (*ret = strdup("NaN")) ? 0 : -ENOMEM;
    return format_go_float(strtod(text, NULL), ret);
}
