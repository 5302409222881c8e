"""Jobs over a process pool (forked: workers inherit the imported modules, and scripts need no
``if __name__ == "__main__"``), or inline for one worker, with a progress bar."""
from __future__ import annotations

import multiprocessing

from tqdm.auto import tqdm

def _pool(workers: int):
    # fork: workers inherit the imported modules, and scripts need no `if __name__ == "__main__"`
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(workers)


def run_jobs(fn, jobs, workers: int, desc: str):
    """Map ``fn`` over ``jobs`` with a process pool (or inline for ``workers <= 1``), with a progress bar."""
    if not jobs:
        return []
    if workers <= 1 or len(jobs) == 1:
        return [fn(j) for j in tqdm(jobs, desc=desc)]
    with _pool(min(workers, len(jobs))) as pool:
        return list(tqdm(pool.imap_unordered(fn, jobs, chunksize=1), total=len(jobs), desc=desc))
