"""Screenshots of an atlas (`maco-keras atlas DIR`) in Debian's headless Chromium.

Writes the index page and one unit page (with the transparency overlay on) as PNGs.

Run:  python benchmarks/atlas_screenshot.py RUN_DIR OUT.png [--unit 309] [--width 1200 --height 900]
"""

import argparse
import os
import pathlib
import shutil
import tempfile


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("out")
    parser.add_argument("--unit", type=int, help="also screenshot this unit's page, transparency on")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    profile = tempfile.mkdtemp()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={args.width},{args.height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    loaded = "return [...document.images].filter(i => i.offsetParent).every(i => i.complete && i.naturalWidth > 0)"
    try:
        driver.get((pathlib.Path(args.folder).resolve() / "index.html").as_uri())
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(loaded))
        driver.save_screenshot(args.out)
        print(f"wrote {args.out}")
        if args.unit is not None:
            driver.get((pathlib.Path(args.folder).resolve() / "pages" / f"unit_{args.unit}.html").as_uri())
            driver.find_element(By.ID, "toggle").click()
            WebDriverWait(driver, 30).until(lambda d: d.execute_script(loaded))
            unit_out = pathlib.Path(args.out).with_name(pathlib.Path(args.out).stem + f"_unit_{args.unit}.png")
            driver.set_window_size(args.width, 1500)
            driver.save_screenshot(str(unit_out))
            print(f"wrote {unit_out}")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
