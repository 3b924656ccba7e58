#!/usr/bin/env python3
"""
Writes cron-table.txt: random cron expressions, a start time and the next
five times each fires in UTC, for test-cron-table.c to check opsd's
parser and next-run computation against.

The reference here is written from crontab(5), not from opsd's C code:

  - fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or
    jan-dec, day of week 0-7 (0 and 7 are Sunday) or sun-sat;
  - an element is '*' (first to last), a number, or a range a-b, each
    optionally followed by /step ("every step-th value of the range,
    starting with its first"); elements are joined with commas;
  - "a/step" is a-last/step, as opsd.conf(5) documents (a cron extension);
  - if both the day of month and the day of week are restricted (the
    field does not start with '*'), a day matching either runs; otherwise
    a day must match both;
  - @yearly/@annually, @monthly, @weekly, @daily/@midnight, @hourly;
  - a run is due in each minute that matches, strictly after the start.

Run it with a fixed seed so the table does not change by itself:
    python3 tests/unit/gen-cron-table.py > tests/unit/cron-table.txt
"""
import calendar
import random
import sys
import time

FIELDS = [  # name, first, last, names (index + base = value)
    ("minute", 0, 59, None, 0),
    ("hour", 0, 23, None, 0),
    ("mday", 1, 31, None, 0),
    ("month", 1, 12, ["jan", "feb", "mar", "apr", "may", "jun", "jul",
                      "aug", "sep", "oct", "nov", "dec"], 1),
    ("wday", 0, 7, ["sun", "mon", "tue", "wed", "thu", "fri", "sat"], 0),
]
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
          "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}


def value(text, f):
    _, lo, hi, names, base = f
    if names and text[:1].isalpha():
        return names.index(text.lower()) + base
    v = int(text)
    assert lo <= v <= hi, (text, f)
    return v


def field_set(text, f):
    _, lo, hi, _, _ = f
    out = set()
    for elem in text.split(","):
        step, stepped = 1, "/" in elem
        if stepped:
            elem, s = elem.split("/")
            step = int(s)
        if elem == "*":
            a, b = lo, hi
        elif "-" in elem:
            x, y = elem.split("-")
            a, b = value(x, f), value(y, f)
        else:
            a = value(elem, f)
            b = hi if stepped else a
        out.update(range(a, b + 1, step))
    return out


class Cron:
    def __init__(self, expr):
        expr = MACROS.get(expr, expr)
        parts = expr.split()
        assert len(parts) == 5
        sets = [field_set(p, f) for p, f in zip(parts, FIELDS)]
        self.minutes, self.hours, self.mdays, self.months, wd = sets
        self.wdays = {0 if d == 7 else d for d in wd}
        self.mday_star = parts[2].startswith("*")
        self.wday_star = parts[4].startswith("*")

    def day_ok(self, y, m, d):
        if m not in self.months:
            return False
        # calendar: Monday = 0; cron: Sunday = 0
        wd = (calendar.weekday(y, m, d) + 1) % 7
        dom, dow = d in self.mdays, wd in self.wdays
        if not self.mday_star and not self.wday_star:
            return dom or dow
        return dom and dow

    def fires(self, after, years):
        """Fire times (unix seconds) strictly after `after`, for `years`."""
        t0 = after - after % 60 + 60
        day = t0 // 86400
        for n in range(int(years * 366)):
            y, m, d = civil(day + n)
            if not self.day_ok(y, m, d):
                continue
            for h in sorted(self.hours):
                for mi in sorted(self.minutes):
                    t = (day + n) * 86400 + h * 3600 + mi * 60
                    if t >= t0:
                        yield t


def civil(days):
    g = time.gmtime(days * 86400)
    return g.tm_year, g.tm_mon, g.tm_mday


def rand_elem(r, f):
    _, lo, hi, names, base = f

    def num():
        v = r.randint(lo, hi)
        if names and r.random() < 0.3 and v - base < len(names):
            return names[v - base] if r.random() < 0.5 else \
                names[v - base].upper()
        return str(v)

    k = r.random()
    if k < 0.15:
        return "*"
    if k < 0.30:
        return f"*/{r.randint(1, hi - lo + 2)}"
    if k < 0.50:
        return num()
    a = r.randint(lo, hi)
    b = r.randint(a, hi)
    if k < 0.65:
        return f"{a}-{b}"
    if k < 0.75:
        return f"{a}-{a}/{r.randint(1, 5)}"   # a one-value range, stepped
    if k < 0.88:
        return f"{a}-{b}/{r.randint(1, hi - lo + 1)}"
    return f"{a}/{r.randint(1, hi - lo + 1)}"


def rand_field(r, f):
    if r.random() < 0.25:
        return ",".join(rand_elem(r, f) for _ in range(r.randint(2, 3)))
    return rand_elem(r, f)


def rand_expr(r):
    if r.random() < 0.03:
        return r.choice(sorted(MACROS))
    return " ".join(rand_field(r, f) for f in FIELDS)


def main():
    r = random.Random(20260)
    lo = calendar.timegm((2000, 1, 1, 0, 0, 0))
    hi = calendar.timegm((2080, 1, 1, 0, 0, 0))
    rows = 0
    print("# expression<TAB>start<TAB>next five fire times (UTC unix "
          "seconds), or -1: never")
    print("# generated by gen-cron-table.py from crontab(5) semantics")
    while rows < 3000:
        expr = rand_expr(r)
        start = r.randint(lo, hi)
        c = Cron(expr)
        got, prev = [], start
        for t in c.fires(start, 12):
            if t - prev > 8 * 366 * 86400:
                break
            got.append(t)
            prev = t
            if len(got) == 5:
                break
        if len(got) == 5:
            print(f"{expr}\t{start}\t{' '.join(map(str, got))}")
        elif not got and not any(True for _ in c.fires(start, 12)):
            print(f"{expr}\t{start}\t-1")
        else:
            continue
        rows += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
