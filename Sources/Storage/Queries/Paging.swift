// Shared helpers for the query extensions: paging and "exactly one row or not found".

extension StoreSession {
    /// Runs `statement` (which must end in ORDER BY) for one page, asking for one row more to
    /// learn whether another page follows.
    func page<Item>(_ statement: SQL, _ request: PageRequest, _ decode: (Row) throws -> Item) throws -> Page<Item> {
        let rows = try connection.query(statement + " LIMIT \(request.limit + 1) OFFSET \(request.offset)")
        let items = try rows.prefix(request.limit).map(decode)
        return Page(items: items, nextOffset: rows.count > request.limit ? request.offset + request.limit : nil)
    }

    /// The single row `statement` returns, or `StoreError.notFound(what)`.
    func one<Item>(_ statement: SQL, notFound what: @autoclosure () -> String, _ decode: (Row) throws -> Item) throws -> Item {
        guard let row = try connection.queryOne(statement) else { throw StoreError.notFound(what()) }
        return try decode(row)
    }

    /// Throws `notFound` unless `statement` changed at least one row.
    func requireChange(_ statement: SQL, notFound what: @autoclosure () -> String) throws {
        if try connection.execute(statement) == 0 { throw StoreError.notFound(what()) }
    }

    /// Throws `notFound` unless the model exists and belongs to the tenant.
    func requireModel(_ modelID: String, tenantID: String) throws {
        guard try connection.queryOne("SELECT id FROM models WHERE id = \(modelID) AND tenant_id = \(tenantID)") != nil else {
            throw StoreError.notFound("model \(modelID)")
        }
    }
}
