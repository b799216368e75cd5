cairn_unit_test(test_chunkstore SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_chunkstore.c
                LIBS cairn_chunkstore LABELS quick TIMEOUT 180)
# Not a test: single-stream throughput (see the file's header). Run by hand.
add_executable(cs_bench ${CMAKE_SOURCE_DIR}/bench/chunkstore/cs_bench.c)
target_link_libraries(cs_bench PRIVATE cairn_chunkstore)
cairn_unit_test(test_cdc SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cdc.c
                LIBS cairn_chunkstore LABELS quick TIMEOUT 180)
# Not a test: uploads files into a pool and reports stored bytes (bench/dedup).
add_executable(cs_ingest ${CMAKE_SOURCE_DIR}/bench/dedup/cs_ingest.c)
target_link_libraries(cs_ingest PRIVATE cairn_chunkstore)
cairn_unit_test(test_gc SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_gc.c
                LIBS cairn_chunkstore LABELS quick TIMEOUT 300)
cairn_unit_test(test_seal SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_seal.c
                LIBS cairn_chunkstore LABELS quick TIMEOUT 300)
# Not a test: sealing, degraded GET and repair rates (see the file's header).
add_executable(seal_bench ${CMAKE_SOURCE_DIR}/bench/chunkstore/seal_bench.c)
target_link_libraries(seal_bench PRIVATE cairn_chunkstore)
# What a set of manifests costs, unique against shared (cs_manifest_usage,
# chunkstore/cs_usage.c; issue 7).
cairn_unit_test(test_cs_usage SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cs_usage.c
                LIBS cairn_chunkstore LABELS quick registry TIMEOUT 120)
