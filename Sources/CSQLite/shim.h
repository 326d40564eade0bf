#include <sqlite3.h>
// SQLITE_TRANSIENT is a macro cast Swift cannot import.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }
// sqlite3_config is variadic, which Swift cannot call. Memory statistics make every sqlite3_malloc
// take one process-wide mutex (all connections, all threads); nothing here reads them. Must run
// before the library initialises (the first open); returns an SQLite result code.
static inline int csqlite_disable_memory_statistics(void) { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }
