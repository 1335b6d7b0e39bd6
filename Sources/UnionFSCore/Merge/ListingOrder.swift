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
package enum ListingOrder {
    /// 64-bit FNV-1a of the name, halved to fit a positive `off_t`, kept clear of 0, 1 and 2.
    package static func cookie(_ name: Name) -> Int64 { name.withBytes { cookie($0) } }

    /// The index of the first of a listing's strictly growing `offsets` past `offset` (the
    /// entry a reader that stopped at `offset` goes on with; `offsets.count` when none is).
    package static func start(after offset: Int64, in offsets: [Int64]) -> Int {
        var lo = 0, hi = offsets.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if offsets[mid] <= offset { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    static func cookie(_ bytes: UnsafeRawBufferPointer) -> Int64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        let c = Int64(bitPattern: h >> 1)
        return c < 3 ? c + 3 : c
    }

    /// What a listing is sorted by: the name's cookie, then (for the rare names that share
    /// one, and for one name in several layers) the name's bytes, then the rank of the
    /// occurrence. `index` says where the occurrence is; plain bytes, cheap to swap.
    package struct Key: Equatable {
        package let cookie: Int64
        package let rank: Int32
        package let index: Int32
        package init(cookie: Int64, rank: Int32, index: Int32) {
            self.cookie = cookie
            self.rank = rank
            self.index = index
        }
    }

    /// Sorts `keys` into listing order; `name` gives the name at an index.
    ///
    /// By cookie first, a radix sort on its bits (cookies are hashes: no comparison sort does
    /// better on them, and a closure called per comparison was most of the merge's sort); then
    /// each run of equal cookies (one name in several layers, or the rare names that share a
    /// cookie) by name and rank.
    static func sort(_ keys: inout [Key], name: (Int32) -> Name) {
        radixSortByCookie(&keys)
        var i = 0
        while i < keys.count {
            var j = i + 1
            while j < keys.count && keys[j].cookie == keys[i].cookie { j += 1 }
            if j - i > 1 {
                keys[i..<j].sort { a, b in
                    let order = compare(name(a.index), name(b.index))
                    return order != 0 ? order < 0 : a.rank < b.rank
                }
            }
            i = j
        }
    }

    /// A stable least-significant-digit radix sort of `keys` by their (non-negative) cookies,
    /// 11 bits a pass; passes whose digit is the same for every key are skipped.
    package static func radixSortByCookie(_ keys: inout [Key]) {
        let n = keys.count
        guard n > 1 else { return }
        if n < 64 {
            keys.sort { $0.cookie < $1.cookie }
            return
        }
        let bits = 11, buckets = 1 << bits, mask = UInt64(buckets - 1)
        var other = keys
        var counts = [Int](repeating: 0, count: buckets)
        var inKeys = true  // where the sorted-so-far order lives
        var shift = 0
        while shift < 63 {
            keys.withUnsafeMutableBufferPointer { a in
                other.withUnsafeMutableBufferPointer { b in
                    counts.withUnsafeMutableBufferPointer { c in
                        let (src, dst) = inKeys ? (a, b) : (b, a)
                        for k in 0..<buckets { c[k] = 0 }
                        for k in src { c[Int((UInt64(bitPattern: k.cookie) >> UInt64(shift)) & mask)] += 1 }
                        // One bucket holds every key: this digit orders nothing.
                        if c[Int((UInt64(bitPattern: src[0].cookie) >> UInt64(shift)) & mask)] == n { return }
                        var sum = 0
                        for k in 0..<buckets { let v = c[k]; c[k] = sum; sum += v }
                        for k in src {
                            let d = Int((UInt64(bitPattern: k.cookie) >> UInt64(shift)) & mask)
                            dst[c[d]] = k
                            c[d] += 1
                        }
                        inKeys.toggle()
                    }
                }
            }
            shift += bits
        }
        if !inKeys { keys = other }
    }

    /// Byte order of two names (as `strcmp`): negative, zero or positive.
    private static func compare(_ a: Name, _ b: Name) -> Int32 {
        a.withCString { x in b.withCString { y in strcmp(x, y) } }
    }
}
