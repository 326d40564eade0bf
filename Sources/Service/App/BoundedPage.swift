// BoundedPage: list pages bounded by their bytes as well as by their count. `limit` caps a page at
// 1000 items, but some items are large (an evaluation of a 1000-class model carries a 1000 × 1000
// confusion matrix, several MB), so a page of them could reach gigabytes. These reads stop once a
// page holds `maxBytes` of stored documents and continue, by `next_offset`, where they stopped.
import Storage

enum BoundedPage {
    /// Stored JSON one page may carry before it ends early. Default 8 MiB.
    static let maxBytes = 8 << 20

    /// Up to `limit` items from `offset`, read in chunks sized to what is left of `maxBytes` (the
    /// first chunk 10 items), ending after the item that passes `maxBytes`; at least one item when any
    /// is left. `size` is an item's stored bytes. `nextOffset` follows the last item returned.
    static func read<Item: Sendable>(limit: Int, offset: Int, maxBytes: Int = maxBytes, size: (Item) -> Int,
                           _ page: (PageRequest) throws -> Page<Item>) throws -> Page<Item> {
        let limit = PageRequest(limit: limit).limit
        var items: [Item] = [], bytes = 0, at = max(0, offset), chunk = 10
        while items.count < limit {
            let want = min(chunk, limit - items.count)
            let got = try page(PageRequest(limit: want, offset: at))
            for (i, item) in got.items.enumerated() {
                items.append(item)
                bytes += max(0, size(item))
                at += 1
                if bytes >= maxBytes {
                    let more = i + 1 < got.items.count || got.nextOffset != nil
                    return Page(items: items, nextOffset: more ? at : nil)
                }
            }
            guard got.nextOffset != nil, got.items.count == want else { return Page(items: items, nextOffset: nil) }
            if items.count == limit { break }
            // Next chunk: as many items of the average size so far as the budget has room for.
            let average = max(1, bytes / max(1, items.count))
            chunk = min(200, max(1, (maxBytes - bytes) / average))
        }
        return Page(items: items, nextOffset: at)
    }
}
