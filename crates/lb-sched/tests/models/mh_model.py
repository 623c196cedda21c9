# Independent model of the kernel's ip_vs_mh.c (64-bit: hsiphash = SipHash-1-3 truncated to u32),
# written from the C source and the SipHash paper, to produce golden values for lb-sched's mh.
import ipaddress
M64 = (1 << 64) - 1
def rotl(x, b): return ((x << b) | (x >> (64 - b))) & M64
def sipround(v):
    v0, v1, v2, v3 = v
    v0 = (v0 + v1) & M64; v1 = rotl(v1, 13) ^ v0; v0 = rotl(v0, 32)
    v2 = (v2 + v3) & M64; v3 = rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & M64; v3 = rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & M64; v1 = rotl(v1, 17) ^ v2; v2 = rotl(v2, 32)
    return [v0, v1, v2, v3]
def siphash13(data: bytes, k0, k1):
    v = [k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573]
    n = len(data); end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i:i+8], 'little'); v[3] ^= m; v = sipround(v); v[0] ^= m
    b = (n << 56) & M64
    b |= int.from_bytes(data[end:], 'little')
    v[3] ^= b; v = sipround(v); v[0] ^= b; v[2] ^= 0xff
    for _ in range(3): v = sipround(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]
def fold(ip):
    a = ipaddress.ip_address(ip)
    if a.version == 4: return int(a)
    x = int(a); w = [(x >> s) & 0xffffffff for s in (96, 64, 32, 0)]
    return w[0] ^ w[1] ^ w[2] ^ w[3]
def hashkey(ip, port, key, offset):
    v = (offset + port + fold(ip)) & 0xffffffff
    return siphash13(v.to_bytes(4, 'little'), key, key) & 0xffffffff
K1, K2 = 2654435761, 2654446892
PRIMES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071]
def build(dests, M):  # dests: list of (ip, port, last_weight)
    from math import gcd
    g = 0
    for _, _, w in dests:
        if w > 0: g = gcd(g, w) if g else w
    table = [None] * M
    if g == 0: return table
    bits = (PRIMES.index(M) + 8) // 2
    mw = max(w for _, _, w in dests) // g
    shift = max(0, mw.bit_length() - bits)
    ds = []
    for ip, port, w in dests:
        off = hashkey(ip, port, K1, 0) % M
        skip = hashkey(ip, port, K2, 0) % (M - 1) + 1
        t = (w // g) >> shift
        if t == 0: t = 1 if w != 0 else 0
        ds.append([off, skip, t])
    taken = [False] * M; n = 0
    while n < M:
        for i, d in enumerate(ds):
            for _ in range(d[2]):
                while taken[d[0]]:
                    d[0] += d[1]
                    if d[0] >= M: d[0] -= M
                taken[d[0]] = True; table[d[0]] = i; n += 1
                if n == M: return table
    return table
def lookup(table, M, ip, port, avail):
    h = hashkey(ip, port, K1, 0) % M
    d = table[h]
    if d is None: return None
    if avail[d]: return d
    for off in range(M):
        r = (off + h) % M
        d = table[hashkey(ip, port, K1, r) % M]
        if d is None: break
        if avail[d]: return d
    return None
if __name__ == '__main__':
    dests = [("10.0.0.1", 80, 1), ("10.0.0.2", 80, 2), ("10.0.0.3", 80, 3), ("2001:db8::7", 443, 1)]
    for M in (251, 4093):
        t = build(dests, M)
        print(M, [t.count(i) for i in range(len(dests))])
        srcs = [("192.168.1.1", 0), ("192.168.1.2", 0), ("172.16.5.4", 0), ("10.9.8.7", 0), ("2001:db8:1::5", 0), ("198.51.100.20", 0)]
        print(" plain", [lookup(t, M, ip, p, [True]*4) for ip, p in srcs])
        print(" fallback, 2 down", [lookup(t, M, ip, p, [True, True, False, True]) for ip, p in srcs])
        print(" port", [lookup(t, M, ip, p, [True]*4) for ip, p in [("192.168.1.1", 1234), ("192.168.1.1", 80), ("10.9.8.7", 65535)]])
    # big weights: shift applies
    dests2 = [("10.0.0.1", 80, 1000), ("10.0.0.2", 80, 1), ("10.0.0.3", 80, 250)]
    t = build(dests2, 251)
    print("shift", [t.count(i) for i in range(3)], [lookup(t, 251, ip, 0, [True]*3) for ip in ("1.2.3.4", "5.6.7.8", "9.9.9.9")])
