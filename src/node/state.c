/* SQLite-backed node state. Writes are single statements or short transactions;
 * WAL lets `seed volume ls` read while a node writes. */
#include "node/state.h"

#include <jansson.h>

#include "base/clock.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct seed_state {
    sqlite3 *db;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS slots ("
    "  namespace TEXT NOT NULL, name TEXT NOT NULL, slot INTEGER NOT NULL UNIQUE,"
    "  PRIMARY KEY (namespace, name));"
    "CREATE TABLE IF NOT EXISTS volumes ("
    "  namespace TEXT NOT NULL, instance TEXT NOT NULL, name TEXT NOT NULL,"
    "  size_bytes INTEGER NOT NULL, image TEXT NOT NULL, uid INTEGER NOT NULL,"
    "  created TEXT NOT NULL, PRIMARY KEY (namespace, instance, name));"
    "CREATE TABLE IF NOT EXISTS held ("
    "  namespace TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (namespace, name));"
    "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS sources ("
    "  name TEXT PRIMARY KEY, url TEXT NOT NULL, ref TEXT, secret_file TEXT,"
    "  poll INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS generations ("
    "  source TEXT NOT NULL, generation INTEGER NOT NULL, namespace TEXT NOT NULL, revision TEXT,"
    "  tree TEXT, time TEXT NOT NULL, trigger TEXT NOT NULL, result TEXT NOT NULL, error TEXT,"
    "  actions TEXT, PRIMARY KEY (source, generation));"
    "CREATE TABLE IF NOT EXISTS running ("
    "  namespace TEXT NOT NULL, name TEXT NOT NULL, alt INTEGER NOT NULL, record TEXT NOT NULL,"
    "  PRIMARY KEY (namespace, name, alt));"
    "CREATE TABLE IF NOT EXISTS events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, kind TEXT NOT NULL,"
    "  source TEXT, instance TEXT, message TEXT);";

int seed_state_open(const char *path, bool readonly, seed_state **ret, seed_error **err) {
    seed_state *s = calloc(1, sizeof(*s));
    if (!s)
        return seed_error_set(err, ENOMEM, "out of memory");
    if (!readonly) {
        /* Root's only, like the lock and the socket: SQLite gives its -wal and -shm
         * files the database's mode, so the database is made (or fixed) first. */
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || fchmod(fd, 0600) < 0) {
            int e = seed_error_setp(err, errno, "opening the state database %s", path);
            if (fd >= 0)
                close(fd);
            free(s);
            return e;
        }
        close(fd);
        for (const char *suffix = "-wal"; suffix; suffix = streq(suffix, "-wal") ? "-shm" : NULL) {
            char side[4200];
            snprintf(side, sizeof(side), "%s%s", path, suffix);
            chmod(side, 0600); /* an older node's, if any */
        }
    }
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int r = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (r != SQLITE_OK) {
        int e = seed_error_set(err, EIO, "opening the state database %s: %s", path,
                               s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(r));
        sqlite3_close(s->db);
        free(s);
        return e;
    }
    sqlite3_busy_timeout(s->db, 5000);
    char *msg = NULL;
    if (!readonly && (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                                   &msg) != SQLITE_OK ||
                      sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK)) {
        int e = seed_error_set(err, EIO, "initialising the state database %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(s->db);
        free(s);
        return e;
    }
    *ret = s;
    return 0;
}

void seed_state_close(seed_state *s) {
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s);
}

int seed_state_slot(seed_state *s, const char *ns, const char *name, unsigned max, unsigned *slot,
                    seed_error **err) {
    sqlite3_stmt *st = NULL;
    int r = sqlite3_prepare_v2(s->db, "SELECT slot FROM slots WHERE namespace=? AND name=?", -1, &st, NULL);
    if (r != SQLITE_OK)
        return seed_error_set(err, EIO, "state: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *slot = (unsigned)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return 0;
    }
    sqlite3_finalize(st);
    /* The lowest slot not taken: the first gap in the ordered list. */
    r = sqlite3_prepare_v2(s->db, "SELECT slot FROM slots ORDER BY slot", -1, &st, NULL);
    if (r != SQLITE_OK)
        return seed_error_set(err, EIO, "state: %s", sqlite3_errmsg(s->db));
    unsigned want = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        unsigned used = (unsigned)sqlite3_column_int64(st, 0);
        if (used > want)
            break;
        want = used + 1;
    }
    sqlite3_finalize(st);
    if (want >= max)
        return seed_error_set(err, ENOSPC, "no free address left in the subnet (%u instances)", max);
    r = sqlite3_prepare_v2(s->db, "INSERT INTO slots (namespace, name, slot) VALUES (?, ?, ?)", -1, &st,
                           NULL);
    if (r != SQLITE_OK)
        return seed_error_set(err, EIO, "state: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, want);
    r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE)
        return seed_error_set(err, EIO, "state: recording the slot of %s: %s", name, sqlite3_errmsg(s->db));
    *slot = want;
    return 0;
}

/* Prepare sql, whose first three parameters are a volume's namespace, instance, name. */
static sqlite3_stmt *prepare_volume_key(seed_state *s, const char *sql, const char *ns, const char *inst,
                                        const char *name) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, inst, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    return st;
}

int seed_state_volume_put(seed_state *s, const seed_volume_row *v, seed_error **err) {
    sqlite3_stmt *st =
        prepare_volume_key(s,
                           "INSERT INTO volumes (namespace, instance, name, size_bytes, image, uid, created)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, instance, name) DO UPDATE"
                           " SET size_bytes=excluded.size_bytes, uid=excluded.uid",
                           v->namespace, v->instance, v->name);
    if (!st)
        return seed_error_set(err, EIO, "state: %s", sqlite3_errmsg(s->db));
    sqlite3_bind_int64(st, 4, (sqlite3_int64)v->size_bytes);
    sqlite3_bind_text(st, 5, v->image, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, v->uid);
    sqlite3_bind_text(st, 7, v->created, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE)
        return seed_error_set(err, EIO, "state: recording volume %s: %s", v->name, sqlite3_errmsg(s->db));
    return 0;
}

static char *col_text(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

/* NULL stays NULL (an optional column), where col_text gives "". */
static char *col_text_or_null(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static void fill_row(sqlite3_stmt *st, seed_volume_row *v) {
    v->namespace = col_text(st, 0);
    v->instance = col_text(st, 1);
    v->name = col_text(st, 2);
    v->size_bytes = (uint64_t)sqlite3_column_int64(st, 3);
    v->image = col_text(st, 4);
    v->uid = (uint32_t)sqlite3_column_int64(st, 5);
    v->created = col_text(st, 6);
}

#define VOLUME_COLUMNS "namespace, instance, name, size_bytes, image, uid, created"

int seed_state_volume_get(seed_state *s, const char *ns, const char *inst, const char *name,
                          seed_volume_row *ret) {
    sqlite3_stmt *st = prepare_volume_key(
        s, "SELECT " VOLUME_COLUMNS " FROM volumes WHERE namespace=? AND instance=? AND name=?", ns, inst,
        name);
    if (!st)
        return -EIO;
    int r = -ENOENT;
    if (sqlite3_step(st) == SQLITE_ROW) {
        fill_row(st, ret);
        r = 0;
    }
    sqlite3_finalize(st);
    return r;
}

int seed_state_volume_list(seed_state *s, seed_volume_row **ret, size_t *n) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT " VOLUME_COLUMNS " FROM volumes ORDER BY namespace, instance, name",
                           -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    size_t count = 0, cap = 8;
    seed_volume_row *rows = calloc(cap, sizeof(*rows));
    while (rows && sqlite3_step(st) == SQLITE_ROW) {
        if (count == cap) {
            seed_volume_row *nr = realloc(rows, (cap *= 2) * sizeof(*rows));
            if (!nr) {
                seed_volume_rows_free(rows, count);
                rows = NULL;
                break;
            }
            rows = nr;
        }
        fill_row(st, &rows[count++]);
    }
    sqlite3_finalize(st);
    if (!rows)
        return -ENOMEM;
    *ret = rows;
    *n = count;
    return 0;
}

int seed_state_volume_delete(seed_state *s, const char *ns, const char *inst, const char *name) {
    sqlite3_stmt *st = prepare_volume_key(
        s, "DELETE FROM volumes WHERE namespace=? AND instance=? AND name=?", ns, inst, name);
    if (!st)
        return -EIO;
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE)
        return -EIO;
    return sqlite3_changes(s->db) > 0 ? 0 : -ENOENT;
}

void seed_volume_row_clear(seed_volume_row *v) {
    free(v->namespace);
    free(v->instance);
    free(v->name);
    free(v->image);
    free(v->created);
    *v = (seed_volume_row){0};
}

void seed_volume_rows_free(seed_volume_row *v, size_t n) {
    for (size_t i = 0; v && i < n; i++)
        seed_volume_row_clear(&v[i]);
    free(v);
}

/* One statement with up to two text parameters; SQLITE_DONE or SQLITE_ROW expected. */
static int exec2(seed_state *s, const char *sql, const char *a, const char *b, bool *row) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    if (a)
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (row)
        *row = r == SQLITE_ROW;
    return r == SQLITE_DONE || r == SQLITE_ROW ? 0 : -EIO;
}

int seed_state_set_held(seed_state *s, const char *ns, const char *name, bool held) {
    return exec2(s,
                 held ? "INSERT OR IGNORE INTO held (namespace, name) VALUES (?, ?)"
                      : "DELETE FROM held WHERE namespace=? AND name=?",
                 ns, name, NULL);
}

bool seed_state_is_held(seed_state *s, const char *ns, const char *name) {
    bool row = false;
    return exec2(s, "SELECT 1 FROM held WHERE namespace=? AND name=?", ns, name, &row) == 0 && row;
}

int seed_state_setting_get(seed_state *s, const char *key, char *buf, size_t size) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM settings WHERE key=?", -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int r = -ENOENT;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
        r = 0;
    }
    sqlite3_finalize(st);
    return r;
}

int seed_state_setting_set(seed_state *s, const char *key, const char *value) {
    if (!value)
        return exec2(s, "DELETE FROM settings WHERE key=?", key, NULL, NULL);
    return exec2(s,
                 "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                 "value=excluded.value",
                 key, value, NULL);
}

/* ---- sources ---- */

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v) {
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

int seed_state_source_put(seed_state *s, const seed_source_row *row) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            s->db,
            "INSERT INTO sources (name, url, ref, secret_file, poll, created) VALUES (?, ?, ?, ?, "
            "?, ?) ON CONFLICT (name) DO UPDATE SET url=excluded.url, ref=excluded.ref, "
            "secret_file=excluded.secret_file, poll=excluded.poll",
            -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, row->url, -1, SQLITE_STATIC);
    bind_text_or_null(st, 3, row->ref);
    bind_text_or_null(st, 4, row->secret_file);
    sqlite3_bind_int(st, 5, (int)row->poll_s);
    bind_text_or_null(st, 6, row->created ? row->created : "");
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : -EIO;
}

int seed_state_source_list(seed_state *s, seed_source_row **ret, size_t *n) {
    sqlite3_stmt *st = NULL;
    *ret = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT name, url, ref, secret_file, poll, created FROM sources ORDER BY name", -1,
                           &st, NULL) != SQLITE_OK)
        return -EIO;
    size_t cap = 0;
    int r = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            seed_source_row *m = realloc(*ret, (cap = cap ? cap * 2 : 8) * sizeof(**ret));
            if (!m) {
                r = -ENOMEM;
                break;
            }
            *ret = m;
        }
        seed_source_row *row = &(*ret)[(*n)++];
        *row = (seed_source_row){.name = col_text(st, 0),
                                 .url = col_text(st, 1),
                                 .ref = col_text_or_null(st, 2),
                                 .secret_file = col_text_or_null(st, 3),
                                 .poll_s = (unsigned)sqlite3_column_int(st, 4),
                                 .created = col_text(st, 5)};
    }
    sqlite3_finalize(st);
    if (r < 0) {
        seed_source_rows_free(*ret, *n);
        *ret = NULL;
        *n = 0;
    }
    return r;
}

int seed_state_source_delete(seed_state *s, const char *name) {
    return exec2(s, "DELETE FROM sources WHERE name=?", name, NULL, NULL);
}

void seed_source_rows_free(seed_source_row *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(r[i].name);
        free(r[i].url);
        free(r[i].ref);
        free(r[i].secret_file);
        free(r[i].created);
    }
    free(r);
}

/* ---- generations ---- */

static void now_rfc3339(char *buf, size_t size) {
    seed_format_utc(seed_realtime_usec(), 3, buf, size);
}

int seed_state_generation_begin(seed_state *s, const char *source, const char *ns, const char *revision,
                                const char *tree, const char *trigger, unsigned *gen) {
    sqlite3_stmt *st = NULL;
    char now[40];
    now_rfc3339(now, sizeof(now));
    if (sqlite3_prepare_v2(
            s->db,
            "INSERT INTO generations (source, generation, namespace, revision, tree, time, "
            "trigger, result) VALUES (?1, (SELECT COALESCE(MAX(generation), 0) + 1 FROM "
            "generations WHERE source=?1), ?2, ?3, ?4, ?5, ?6, 'running') RETURNING generation",
            -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ns, -1, SQLITE_STATIC);
    bind_text_or_null(st, 3, revision);
    bind_text_or_null(st, 4, tree);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, trigger, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *gen = (unsigned)sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (r == SQLITE_ROW && *gen > SEED_STATE_MAX_GENERATIONS &&
        sqlite3_prepare_v2(s->db, "DELETE FROM generations WHERE source=? AND generation <= ?", -1, &st,
                           NULL) == SQLITE_OK) {
        /* Bounded: the oldest go. */
        sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int)(*gen - SEED_STATE_MAX_GENERATIONS));
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    return r == SQLITE_ROW ? 0 : -EIO;
}

json_t *seed_state_generation_trees(seed_state *s, const char *source, unsigned limit) {
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    if (sqlite3_prepare_v2(
            s->db,
            "SELECT DISTINCT tree FROM (SELECT tree FROM generations WHERE source=? AND tree IS NOT "
            "NULL ORDER BY generation DESC LIMIT ?)",
            -1, &st, NULL) != SQLITE_OK)
        return arr;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)limit);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(arr, json_string((const char *)sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    return arr;
}

int seed_state_generation_finish(seed_state *s, const char *source, unsigned gen, const char *result,
                                 const char *error, json_t *actions) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            s->db, "UPDATE generations SET result=?, error=?, actions=? WHERE source=? AND generation=?", -1,
            &st, NULL) != SQLITE_OK)
        return -EIO;
    char *a = actions ? json_dumps(actions, JSON_COMPACT) : NULL;
    sqlite3_bind_text(st, 1, result, -1, SQLITE_STATIC);
    bind_text_or_null(st, 2, error);
    bind_text_or_null(st, 3, a);
    sqlite3_bind_text(st, 4, source, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, (int)gen);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    free(a);
    return r == SQLITE_DONE ? 0 : -EIO;
}

static json_t *col_json_text(sqlite3_stmt *st, int i) {
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? json_string(t) : json_null();
}

json_t *seed_state_history(seed_state *s, const char *source, unsigned limit) {
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    if (sqlite3_prepare_v2(s->db,
                           "SELECT * FROM (SELECT source, generation, namespace, revision, time, trigger, "
                           "result, error, actions FROM generations WHERE ?1 IS NULL OR source=?1 ORDER BY "
                           "time DESC, generation DESC LIMIT ?2) ORDER BY time, generation",
                           -1, &st, NULL) != SQLITE_OK)
        return arr;
    bind_text_or_null(st, 1, source);
    sqlite3_bind_int(st, 2, (int)limit);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *a = (const char *)sqlite3_column_text(st, 8);
        json_t *actions = a ? json_loads(a, 0, NULL) : NULL;
        json_array_append_new(
            arr, json_pack("{s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "source", col_json_text(st, 0),
                           "generation", sqlite3_column_int(st, 1), "namespace", col_json_text(st, 2),
                           "revision", col_json_text(st, 3), "time", col_json_text(st, 4), "trigger",
                           col_json_text(st, 5), "result", col_json_text(st, 6), "error",
                           col_json_text(st, 7), "actions", actions ? actions : json_array()));
    }
    sqlite3_finalize(st);
    return arr;
}

int seed_state_generation_get(seed_state *s, const char *source, unsigned gen, char **revision, char **tree,
                              char **result) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT revision, tree, result FROM generations WHERE source=? AND generation=?",
                           -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)gen);
    int r = -ENOENT;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *revision = col_text_or_null(st, 0);
        *tree = col_text_or_null(st, 1);
        *result = col_text(st, 2);
        r = 0;
    }
    sqlite3_finalize(st);
    return r;
}

int seed_state_generation_last_ok(seed_state *s, const char *source, unsigned *gen) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT MAX(generation) FROM generations WHERE source=? AND result='ok'",
                           -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    int r = -ENOENT;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *gen = (unsigned)sqlite3_column_int(st, 0);
        r = 0;
    }
    sqlite3_finalize(st);
    return r;
}

int seed_state_generations_delete(seed_state *s, const char *source) {
    return exec2(s, "DELETE FROM generations WHERE source=?", source, NULL, NULL);
}

/* ---- events ---- */

static json_t *event_json(sqlite3_stmt *st) {
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0), "time",
                     col_json_text(st, 1), "kind", col_json_text(st, 2), "source", col_json_text(st, 3),
                     "instance", col_json_text(st, 4), "message", col_json_text(st, 5));
}

json_t *seed_state_event_add(seed_state *s, const char *kind, const char *source, const char *instance,
                             const char *message) {
    sqlite3_stmt *st = NULL;
    char now[40];
    now_rfc3339(now, sizeof(now));
    if (sqlite3_prepare_v2(
            s->db,
            "INSERT INTO events (time, kind, source, instance, message) VALUES (?, ?, ?, ?, ?) "
            "RETURNING id, time, kind, source, instance, message",
            -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    bind_text_or_null(st, 3, source);
    bind_text_or_null(st, 4, instance);
    bind_text_or_null(st, 5, message);
    json_t *ev = sqlite3_step(st) == SQLITE_ROW ? event_json(st) : NULL;
    sqlite3_finalize(st);
    if (ev && json_integer_value(json_object_get(ev, "id")) % 256 == 0) {
        /* Bounded: drop the oldest now and then (cheap on the primary key). */
        sqlite3_stmt *d = NULL;
        if (sqlite3_prepare_v2(s->db, "DELETE FROM events WHERE id <= ?", -1, &d, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(d, 1, json_integer_value(json_object_get(ev, "id")) - SEED_STATE_MAX_EVENTS);
            sqlite3_step(d);
            sqlite3_finalize(d);
        }
    }
    return ev;
}

json_t *seed_state_events(seed_state *s, int64_t after, unsigned limit) {
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    if (sqlite3_prepare_v2(
            s->db,
            "SELECT * FROM (SELECT id, time, kind, source, instance, message FROM events WHERE "
            "id > ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            -1, &st, NULL) != SQLITE_OK)
        return arr;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, (int)limit);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(arr, event_json(st));
    sqlite3_finalize(st);
    return arr;
}

/* ---- running instances (for the next daemon to adopt) ---- */

int seed_state_running_put(seed_state *s, const char *ns, const char *name, bool alt, json_t *record) {
    sqlite3_stmt *st = NULL;
    char *text = json_dumps(record, JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    int r = -EIO;
    if (sqlite3_prepare_v2(
            s->db,
            "INSERT INTO running (namespace, name, alt, record) VALUES (?, ?, ?, ?) ON CONFLICT "
            "(namespace, name, alt) DO UPDATE SET record=excluded.record",
            -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, alt);
        sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
        r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    }
    sqlite3_finalize(st);
    free(text);
    return r;
}

int seed_state_running_delete(seed_state *s, const char *ns, const char *name, bool alt) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM running WHERE namespace=? AND name=? AND alt=?", -1, &st,
                           NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, alt);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : -EIO;
}

json_t *seed_state_running_list(seed_state *s) {
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    if (sqlite3_prepare_v2(s->db, "SELECT record FROM running ORDER BY namespace, name, alt", -1, &st,
                           NULL) != SQLITE_OK)
        return arr;
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *j = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        if (json_is_object(j))
            json_array_append_new(arr, j);
        else
            json_decref(j);
    }
    sqlite3_finalize(st);
    return arr;
}

int seed_state_running_clear(seed_state *s) {
    return exec2(s, "DELETE FROM running", NULL, NULL, NULL);
}
