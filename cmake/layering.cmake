# cmake/layering.cmake -- the module layering, checked on every build.
#
#   cmake -DSRC=<source dir> -P cmake/layering.cmake
#
# Each module may include only the headers listed for it below (paths
# relative to the source root, matched as prefixes). A quoted #include
# outside them fails the build with the file, the line and the rule. Why the
# rules: a source never sees a target or Raft, a target never sees a source,
# raft/ knows nothing of identities, and the engine reaches sources, targets
# and the log only through their ports -- so that a new source or target is a
# new file behind a port (CONTRIBUTING.md, "Layout").
#
# Module of a file: the longest prefix in CANOPY_MODULES that matches it.
set(CANOPY_MODULES
  "common/"
  "raft/"
  "sync/state/"
  "sync/transform/"
  "sync/source/"
  "sync/target/"
  "sync/engine/"
  "sync/engine.h"
  "sync/replog/"
  "sync/"
  "agent/"
  "tests/"
  "bench/")

# What each module may include (prefixes). "sync/CORE" means the sync core:
# the files directly in sync/ (hash, object, strmap, provlog, secret), not
# the engine's public header sync/engine.h.
set(ALLOW_common/        "common/")
set(ALLOW_raft/          "common/;raft/")
set(ALLOW_sync/          "common/;sync/CORE")
set(ALLOW_sync/state/    "common/;sync/CORE;sync/state/;raft/fsm.h")
set(ALLOW_sync/transform/ "common/;sync/CORE;sync/transform/")
set(ALLOW_sync/source/   "common/;sync/CORE;sync/source/")
set(ALLOW_sync/target/   "common/;sync/CORE;sync/target/")
set(ALLOW_sync/engine/   "common/;sync/CORE;sync/engine.h;sync/engine/;sync/state/;sync/transform/;sync/source/source.h;sync/target/target.h;sync/replog/replog.h")
set(ALLOW_sync/engine.h  "${ALLOW_sync/engine/}")
# the replicated-log port and its one adapter over raft/: the only sync/ code that knows Raft
set(ALLOW_sync/replog/   "common/;sync/CORE;sync/replog/;sync/state/;raft/")
set(ALLOW_agent/         "common/;raft/;sync/;agent/")
set(ALLOW_tests/         "common/;raft/;sync/;agent/;tests/")
set(ALLOW_bench/         "common/;raft/;sync/;agent/;bench/")

if(NOT SRC)
  message(FATAL_ERROR "layering.cmake: -DSRC=<source dir> is required")
endif()

file(GLOB_RECURSE files RELATIVE "${SRC}"
  "${SRC}/common/*.[ch]" "${SRC}/raft/*.[ch]" "${SRC}/sync/*.[ch]" "${SRC}/agent/*.[ch]")
set(errors "")
foreach(f ${files})
  set(module "")
  foreach(m ${CANOPY_MODULES})
    string(FIND "${f}" "${m}" at)
    if(at EQUAL 0)
      string(LENGTH "${m}" ml)
      string(LENGTH "${module}" cl)
      if(ml GREATER cl)
        set(module "${m}")
      endif()
    endif()
  endforeach()
  if(module STREQUAL "")
    continue()
  endif()
  set(allowed ${ALLOW_${module}})
  file(STRINGS "${SRC}/${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]+\"")
  foreach(line ${lines})
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]+\"([^\"]+)\".*" "\\1" inc "${line}")
    set(ok FALSE)
    foreach(a ${allowed})
      if(a STREQUAL "sync/CORE")
        # a file directly in sync/: "sync/x.h", not "sync/dir/x.h"
        if(inc MATCHES "^sync/[^/]+$" AND NOT inc STREQUAL "sync/engine.h")
          set(ok TRUE)
        endif()
      else()
        string(FIND "${inc}" "${a}" at)
        if(at EQUAL 0)
          set(ok TRUE)
        endif()
      endif()
    endforeach()
    if(NOT ok)
      string(APPEND errors "  ${f}: #include \"${inc}\" -- module ${module} may include only: ${allowed}\n")
    endif()
  endforeach()
endforeach()
if(NOT errors STREQUAL "")
  message(FATAL_ERROR "layering violations (cmake/layering.cmake):\n${errors}")
endif()
