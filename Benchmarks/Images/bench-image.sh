# Sourced by the image benchmarks: makes the benchmark images in a podman storage, nothing run.
#
#   make_bench_images "$P" "$W" TOTAL_MIB FILES LAYERS
#
# $P is the podman command line (with its --root/--runroot), $W a scratch dir. Makes
# localhost/bench:1 … localhost/bench:LAYERS (import of a busybox rootfs with the first share of
# FILES random files, then create/mount/commit per layer) and localhost/other:1, which shares all
# but bench's top layer and adds a file of its own.
make_bench_images() {
    local P=$1 W=$2 total_mib=$3 files=$4 layers=$5
    local per_layer=$((files / layers))
    local file_kib=$((total_mib * 1024 / files))
    [ "$file_kib" -ge 1 ] || file_kib=1
    fill() {  # fill DIR LAYER: per_layer files of file_kib KiB in 100 dirs
        local dir=$1 n=$2 i d
        for i in $(seq 0 $((per_layer - 1))); do
            d="$dir/l$n/d$((i % 100))"
            mkdir -p "$d"
            head -c $((file_kib * 1024)) /dev/urandom > "$d/f$i"
        done
    }
    echo "making a $layers-layer image: $files files, ${total_mib} MiB" >&2
    mkdir -p "$W/rootfs/bin" && cp /bin/busybox "$W/rootfs/bin/"
    fill "$W/rootfs" 1
    tar -C "$W/rootfs" -cf "$W/base.tar" . && rm -rf "$W/rootfs"
    $P import -q "$W/base.tar" localhost/bench:1 >/dev/null && rm "$W/base.tar"
    local n c m
    for n in $(seq 2 "$layers"); do
        c=$($P create localhost/bench:$((n - 1)) /bin/busybox true)
        m=$($P mount "$c")
        fill "$m" "$n"
        $P unmount "$c" >/dev/null
        $P commit -q "$c" localhost/bench:$n >/dev/null
        $P rm "$c" >/dev/null
    done
    c=$($P create localhost/bench:$((layers - 1)) /bin/busybox true)
    m=$($P mount "$c"); echo other > "$m/other"; $P unmount "$c" >/dev/null
    $P commit -q "$c" localhost/other:1 >/dev/null; $P rm "$c" >/dev/null
}
