# Shared by the end-to-end scripts: `free_base [TAKEN...]` prints the first of three
# consecutive ports, free for TCP and UDP, none of them among TAKEN.
free_base() {
  python3 - "$@" <<'EOF'
import random, socket, sys
taken = {int(p) for p in sys.argv[1:]}
for _ in range(200):
    base = random.randrange(20000, 60000)
    ports = range(base, base + 3)
    if taken.intersection(ports):
        continue
    try:
        for port in ports:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(socket.AF_INET, kind)
                s.bind(("127.0.0.1", port))
                s.close()
    except OSError:
        continue
    print(base)
    break
else:
    sys.exit("no free ports")
EOF
}
