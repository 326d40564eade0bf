// PageRequest and Page: offset pagination for list operations.

/// A page request: at most `limit` items after skipping `offset`.
public struct PageRequest: Sendable, Equatable {
    public var limit: Int
    public var offset: Int

    /// A page; `limit` is clamped to 1…1000.
    public init(limit: Int = 50, offset: Int = 0) {
        self.limit = min(max(limit, 1), 1000)
        self.offset = max(offset, 0)
    }
}

/// One page of results, newest last, and where the next page starts (nil at the end).
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextOffset: Int?

    public init(items: [Item], nextOffset: Int?) {
        self.items = items
        self.nextOffset = nextOffset
    }
}

extension Page: Equatable where Item: Equatable {}
