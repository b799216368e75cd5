# Volume, snapshot and attachment operations and fsck of the block store
# (blockstore/bs_admin.c, bs_fsck.c, issue 6) over a real pool.
if(TARGET cairn_blockstore)
  cairn_unit_test(test_bs_admin SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_bs_admin.c
                  LIBS cairn_blockstore LABELS quick block TIMEOUT 300)
endif()
