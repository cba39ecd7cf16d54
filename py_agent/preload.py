"""What the browser's boot imports before numpy: the contents of its memory snapshot.

The worker (web/src/worker.js) keeps a Pyodide memory snapshot in Cache Storage: Python's
heap right after this module was imported, so a later visit restores an interpreter that
has already imported all of it instead of starting Python and unzipping the standard
library again. A snapshot cannot hold shared libraries, so nothing imported here may
import numpy (tests/test_preload.py checks that, and that this list keeps up with the
standard library modules the rest of the core imports).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import collections.abc
import ctypes
import dataclasses
import datetime
import functools
import hashlib
import inspect
import io
import itertools
import json
import math
import numbers
import pickle
import random
import re
import secrets
import traceback
import types
import typing
import unicodedata
import uuid
import zipfile

import dateutil.rrule

from . import cache, dates, recurrence, slots, tokenizer
from .sync import hlc, merge, ops

# Named so linters see them used; the imports themselves are the point.
MODULES = (
    asyncio,
    base64,
    binascii,
    calendar,
    collections.abc,
    ctypes,
    dataclasses,
    datetime,
    functools,
    hashlib,
    inspect,
    io,
    itertools,
    json,
    math,
    numbers,
    pickle,
    random,
    re,
    secrets,
    traceback,
    types,
    typing,
    unicodedata,
    uuid,
    zipfile,
    dateutil.rrule,
    cache,
    dates,
    recurrence,
    slots,
    tokenizer,
    hlc,
    merge,
    ops,
)
