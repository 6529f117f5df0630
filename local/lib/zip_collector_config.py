"""zip_collector_config.py ZIP DIR: puts every DIR/*.yaml into ZIP as collector/<name>.yaml.

The collector layer beside each function reads its configuration from the function's zip
(/var/task/collector/<backend>.yaml). Idempotent: collector/ entries already in the zip are
replaced, every other entry (the bootstrap binary, with its permissions) is kept as it is.
"""

import os
import shutil
import sys
import tempfile
import zipfile


def main(zip_path: str, config_dir: str) -> None:
    configs = sorted(f for f in os.listdir(config_dir) if f.endswith(".yaml"))
    if not configs:
        sys.exit(f"no *.yaml in {config_dir}")
    fd, tmp = tempfile.mkstemp(suffix=".zip", dir=os.path.dirname(zip_path) or ".")
    os.close(fd)
    try:
        with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(
            tmp, "w", zipfile.ZIP_DEFLATED
        ) as dst:
            for info in src.infolist():
                if not info.filename.startswith("collector/"):
                    dst.writestr(info, src.read(info))
            for name in configs:
                info = zipfile.ZipInfo(f"collector/{name}", date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(os.path.join(config_dir, name), "rb") as f:
                    dst.writestr(info, f.read())
        shutil.move(tmp, zip_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"{zip_path}: collector/{{{','.join(configs)}}}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
