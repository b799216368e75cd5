# The volume I/O layer (blockstore/bs_io*.c, issue 6): handles, reads,
# writes, zeroes, block status, intents and resync over a real pool, checked
# against an in-memory reference; prints a small 16-thread IOPS figure.
if(TARGET cairn_blockstore)
  cairn_unit_test(test_bs_io SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_bs_io.c
                  LIBS cairn_blockstore LABELS quick block TIMEOUT 300)
endif()
