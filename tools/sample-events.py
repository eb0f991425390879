#!/usr/bin/env python3
"""Writes N realistic analytics events, one JSON object per line: the
benches' realistic mix (`realistic_event` in benches/batches/mod.rs, the
same seeded generator, so the same events), for `make plan SAMPLE=FILE`.

    python3 tools/sample-events.py 4000 > /tmp/sample.jsonl
"""
import sys

MASK = (1 << 64) - 1
TYPES = ["page_view", "add_to_cart", "checkout", "search", "sign_in", "video_play"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
]
CITIES = [("US", "Seattle"), ("DE", "Berlin"), ("JP", "Osaka"), ("BR", "Recife"), ("FR", "Lyon")]


class XorShift:
    def __init__(self, state):
        self.state = state

    def next(self):
        s = self.state
        s ^= (s << 13) & MASK
        s ^= s >> 7
        s ^= (s << 17) & MASK
        self.state = s
        return s


def event(i, rng):
    n = rng.next
    country, city = CITIES[n() % 5]
    a, b, c, d, e = n() & 0xFFFFFFFF, n() & 0xFFFF, n() % 4096, n() & 0xFFFF, n() % (1 << 48)
    kind, minute, second, ms = TYPES[n() % 6], i // 60 % 60, i % 60, n() % 1000
    user, session = n() % 1_000_000, n()
    os_ = ["ios", "android", "windows", "macos"][n() % 4]
    browser = ["safari", "chrome", "firefox"][n() % 3]
    width, height = 360 + n() % 2000, 640 + n() % 1500
    product, variant, query, title = n() % 50_000, n() % 8, n() % 1_000, n() % 50_000
    sku, price, cents, qty, total, tcents, exp = (
        n() % 50_000, n() % 500, n() % 100, 1 + n() % 5, n() % 2_000, n() % 100, n() % 40)
    arm = ["control", "treatment"][n() % 2]
    agent = AGENTS[n() % 3]
    return (
        f'{{"event_id":"{a:08x}-{b:04x}-7{c:03x}-{d:04x}-{e:012x}","event_type":"{kind}",'
        f'"timestamp":"2026-11-25T12:{minute:02}:{second:02}.{ms:03}Z",'
        f'"user_id":"user-{user}","session_id":"{session:016x}","device":{{"os":"{os_}","browser":"{browser}",'
        f'"screen":"{width}x{height}","language":"en-US"}},'
        f'"page":{{"url":"https://shop.example.com/products/{product}?ref=home&variant={variant}",'
        f'"referrer":"https://www.example.com/search?q=item+{query}","title":"Product {title} - Example Shop"}},'
        f'"geo":{{"country":"{country}","city":"{city}","timezone":"UTC"}},'
        f'"properties":{{"product_id":"sku-{sku}","price":{price}.{cents:02},"currency":"USD","quantity":{qty},'
        f'"cart_total":{total}.{tcents:02},"experiment":"exp-{exp}","variant":"{arm}"}},'
        f'"user_agent":"{agent}","sequence":{i}}}'
    )


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    rng = XorShift(0x5EED)
    for i in range(count):
        print(event(i, rng))


if __name__ == "__main__":
    main()
