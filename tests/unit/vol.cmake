# The volume extent map (blockstore/vol_map.c, issue 6): generations,
# snapshots, clones, rollback and diff over a real LMDB env, checked against a
# reference model driven by a seeded random sequence.
if(TARGET cairn_blockstore)
  cairn_unit_test(test_vol_map SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_vol_map.c
                  LIBS cairn_blockstore LABELS quick block TIMEOUT 120)
endif()
