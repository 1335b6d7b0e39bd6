import Glibc

/// The order a merged listing is handed out in, and the offset (`d_off`) of each entry.
///
/// An entry's offset is a hash of its name, and the listing is sorted by it (as ext4 does with
/// its htree cookies), so that an offset means "after this name" whatever else the directory
/// holds or in which layer each name lives. That makes offsets valid across listings taken at
/// different times: the kernel's readdir cache can take a listing begun through one handle and
/// continued through another, and a handle can take its listing again after a change (see
/// `DirectoryHandle`) without a reader in the middle of it seeing an unchanged name twice or
/// not at all. `.` and `..` come first, at offsets 1 and 2; names hash to 3 and above. Two
/// names with one hash (1 in 2^63) get consecutive offsets in name order.
enum ListingOrder {
    /// 64-bit FNV-1a of the name, halved to fit a positive `off_t`, kept clear of 0, 1 and 2.
    static func cookie(_ name: Name) -> Int64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        name.withBytes { bytes in
            for b in bytes {
                h ^= UInt64(b)
                h = h &* 0x100_0000_01b3
            }
        }
        let c = Int64(bitPattern: h >> 1)
        return c < 3 ? c + 3 : c
    }

    /// `.` and `..` (`dots`), then `entries` sorted by cookie; and each one's offset.
    ///
    /// Sorts (cookie, index) pairs, which copy as plain bytes, and gathers the entries once at
    /// the end: sorting the entries themselves moved a name reference with every swap.
    static func sorted(_ entries: [MergedEntry], after dots: (MergedEntry, MergedEntry)) -> (entries: [MergedEntry], offsets: [Int64]) {
        var keys: [(offset: Int64, index: Int)] = []
        keys.reserveCapacity(entries.count)
        for i in entries.indices { keys.append((cookie(entries[i].name), i)) }
        keys.sort { a, b in
            a.offset != b.offset ? a.offset < b.offset : precedes(entries[a.index].name, entries[b.index].name)
        }
        var sorted: [MergedEntry] = [dots.0, dots.1]
        var offsets: [Int64] = [1, 2]
        sorted.reserveCapacity(keys.count + 2)
        offsets.reserveCapacity(keys.count + 2)
        for k in keys {
            sorted.append(entries[k.index])
            offsets.append(max(k.offset, offsets[offsets.count - 1] + 1))
        }
        return (sorted, offsets)
    }

    /// Byte order of two names, for the (rare) names that share a hash.
    private static func precedes(_ a: Name, _ b: Name) -> Bool {
        a.withCString { x in b.withCString { y in strcmp(x, y) < 0 } }
    }
}
