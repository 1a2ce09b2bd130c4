"""The index: chunks, their vectors in a vector store, sentence vectors, BM25 and a
manifest, saved as atomic generations in one folder.

One module per part::

    view.py         Index: the loaded, searchable index (Index.build writes through build.py)
    build.py        the one writer: the corpus spooled, documents in batches
    saved.py        SavedIndex: an existing generation read as files, for updates
    tables.py       row tables: where each document, chunk and sentence is in the files
    lazy.py         read-only views that read documents and chunks from the files on demand
    manifest.py     the manifest, and the one check every reader runs
    generations.py  generation folders, CURRENT, the writer lock, new_generation
    lexical.py      stemmed terms, BM25 and IDF, saved with the generation as segments
    lexsegments.py  one lexical segment: term ids, postings, BM25 scored over live rows
    stores/         vector stores behind one protocol: FAISS flat or HNSW, Milvus
    sync.py         sync_index: build, update or rebuild to match the corpus

It does not rank or fuse results (retrieval.py) nor answer (answering.py).
"""

from .build import UpdateReport
from .generations import current_generation, read_manifest, sweep, write_lock
from .manifest import index_stats
from .sync import SyncResult, sync_index
from .view import Index

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
