"""An atlas of many units in headless Chromium: build time, time to the first thumbnails, search time.

Generates a run folder of N units (small random images, scores, records, as `maco-keras
visualize` writes them; a labels file names them), builds its site with `maco-keras atlas`,
opens `index.html` in Debian's headless Chromium (Selenium) and prints one table:
- build: seconds for `maco-keras atlas` (thumbnails and a page per unit);
- first thumbnails: from the request of the page until every thumbnail in the window has
  loaded (the page's others are lazy);
- search: the page's own filter and redraw for a query, timed inside the page
  (performance.now() around the input event), for a unit number and for a name.

    .venv/bin/python benchmarks/atlas_scale.py --units 10000
"""

import argparse
import pathlib
import shutil
import tempfile
import time

import numpy as np

from maco_keras import atlas, results

SEARCH = """
const search = document.getElementById("search");
search.value = arguments[0];
const start = performance.now();
search.dispatchEvent(new Event("input"));
const seconds = (performance.now() - start) / 1000;
return [seconds, document.querySelectorAll("#grid .card").length];
"""


def generate(folder, count, size=32, steps=16, seed=0):
    """A run folder of `count` finished units, as `visualize` leaves it."""
    rng = np.random.default_rng(seed)
    run = results.RunFolder(folder)
    settings = {"method": "maco", "steps": steps, "image_size": size, "crops": 2, "values_range": [-1.0, 1.0],
                "seed": 0, "noise": None, "crop_scale": None, "preset": "fast", "contrast": 0.7}
    run.open({"model": "generated.keras", "layer": "generated", "kind": "channel", "num_units": count,
              "settings": settings}, list(range(count)))
    for unit in range(count):
        image = rng.uniform(-1, 1, (size, size, 3)).astype(np.float32)
        scores = np.cumsum(rng.uniform(0, 1, steps)).astype(np.float32)
        sizes = results.save_unit(folder, unit, image, np.abs(image), scores, (-1, 1))
        run.record(unit, scores[-1], sizes, seconds=0.0, shard="0/1")
    (folder.parent / "labels.txt").write_text("\n".join(f"class_{unit}" for unit in range(count)))


def driver_for(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        raise SystemExit("Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1400,1000",
                 "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def measure(count, repeats):
    with tempfile.TemporaryDirectory() as temporary:
        folder = pathlib.Path(temporary) / "run"
        started = time.perf_counter()
        generate(folder, count)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        atlas.AtlasJob(folder, labels=folder.parent / "labels.txt").run()
        build = time.perf_counter() - started
        driver = driver_for(pathlib.Path(temporary) / "profile")
        try:
            first, searches = [], {"number": [], "name": []}
            for _ in range(repeats):
                started = time.perf_counter()
                driver.get((folder / "index.html").as_uri())
                # The thumbnails in the window (lazy ones below it load when scrolled to).
                while not driver.execute_script(
                        "const images = [...document.querySelectorAll('#grid .card img')]"
                        "  .filter(i => i.getBoundingClientRect().top < window.innerHeight);"
                        "return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);"):
                    if time.perf_counter() - started > 120:
                        raise SystemExit("the first thumbnails did not load within 120 s")
                    time.sleep(0.005)
                first.append(time.perf_counter() - started)
                for kind, query in (("number", str(count // 2)), ("name", f"class_{count // 3}")):
                    seconds, shown = driver.execute_script(SEARCH, query)
                    assert shown >= 1, (query, shown)
                    searches[kind].append(seconds)
                cards = len(driver.find_elements("css selector", "#grid .card"))
        finally:
            driver.quit()
        size_kb = (folder / "index.html").stat().st_size / 1024
    return {"units": count, "generate": generated, "build": build, "index_kb": size_kb, "cards": cards,
            "first": float(np.median(first)), "number": float(np.median(searches["number"])) * 1000,
            "name": float(np.median(searches["name"])) * 1000}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, nargs="+", default=[10000])
    parser.add_argument("--repeats", type=int, default=5, help="page loads per size (medians are printed)")
    args = parser.parse_args(argv)
    if any(count < 2 for count in args.units) or args.repeats < 1:
        parser.error(f"expected --units >= 2 and --repeats >= 1, received: --units={args.units} "
                     f"--repeats={args.repeats}")
    rows = [measure(count, args.repeats) for count in args.units]
    print(f"headless Chromium, medians of {args.repeats} page loads; {atlas.PAGE_SIZE} cards per page")
    print("| units | atlas build (s) | index.html (KB) | first thumbnails (s) | search a number (ms) | "
          "search a name (ms) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['units']} | {row['build']:.0f} | {row['index_kb']:.0f} | {row['first']:.2f} | "
              f"{row['number']:.1f} | {row['name']:.1f} |")


if __name__ == "__main__":
    main()
