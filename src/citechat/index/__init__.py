"""The index: chunks, their vectors in a vector store, sentence vectors, BM25 and a
manifest, saved as atomic generations in one folder.

One module per part::

    view.py         Index: the loaded, searchable index (and its in-memory updates)
    build.py        the streamed build: the corpus spooled, documents in batches
    saved.py        SavedIndex: an existing generation read as files, for updates
    generations.py  generation folders, CURRENT, the writer lock, atomic commits
    lexical.py      stemmed terms, BM25 and IDF, saved with the generation
    stores.py       vector stores: FAISS flat or HNSW, Milvus
    sync.py         sync_index: build, update or rebuild to match the corpus

It does not rank or fuse results (retrieval.py) nor answer (answering.py).
"""

from .generations import current_generation, read_manifest, sweep, write_lock
from .sync import SyncResult, sync_index
from .view import Index, UpdateReport, index_stats

__all__ = [
    "Index",
    "SyncResult",
    "UpdateReport",
    "current_generation",
    "index_stats",
    "read_manifest",
    "sweep",
    "sync_index",
    "write_lock",
]
