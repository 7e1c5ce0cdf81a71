/* SQLite-backed node state. Writes are single statements or short transactions;
 * WAL lets `seed volume ls` read while a node writes. */
#include "node/state.h"

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
    "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

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
