# ruff: noqa: E501
"""LunarCrush API v4 endpoints as data (https://lunarcrush.com/developers/api/endpoints).

Auth is `Authorization: Bearer <key>`. Plan limits are per minute and per day and are not
published in one place; 10 calls/min is the Individual plan's floor, so it is the default
budget. Times are unix seconds.
"""

from __future__ import annotations

from typing import Any

VENDOR: dict[str, Any] = {
    "name": "lunarcrush",
    "title": "LunarCrush API v4",
    "base_url": "https://lunarcrush.com/api4",
    "base_url_env": "LUNARCRUSH_BASE_URL",
    "docs": "https://lunarcrush.com/developers/api/endpoints",
    "auth_header": "Authorization",
    "auth_prefix": "Bearer ",
    "key_required": True,
    "budget_per_min": 10,
    "cache_ttl_s": 60.0,
    "enums": {
        "bucket": "hour day",
        "interval": "1d 1w 1m 3m 6m 1y all",
    },
    # name | path | summary | params (see catalog/__init__.py for the spec)
    "endpoints": """
topics_list_v1          | /public/topics/list/v1                             | Topics List
topic_whatsup_v1        | /public/topic/{topic}/whatsup/v1                   | Topic Whatsup | topic*
topic_time_series_v2    | /public/topic/{topic}/time-series/v2               | Topic Time Series v2 | topic* bucket:bucket
topic_time_series_v1    | /public/topic/{topic}/time-series/v1               | Topic Time Series | topic* bucket:bucket interval:interval start:int end:int
topic_posts_v1          | /public/topic/{topic}/posts/v1                     | Topic Posts | topic* start:int end:int
topic_news_v1           | /public/topic/{topic}/news/v1                      | Topic News | topic*
topic_creators_v1       | /public/topic/{topic}/creators/v1                  | Topic Creators | topic*
category_v1             | /public/category/{category}/v1                     | Category | category*
category_topics_v1      | /public/category/{category}/topics/v1              | Category Topics | category*
category_time_series_v1 | /public/category/{category}/time-series/v1         | Category Time Series | category* bucket:bucket interval:interval start:int end:int
category_posts_v1       | /public/category/{category}/posts/v1               | Category Posts | category* start:int end:int
category_news_v1        | /public/category/{category}/news/v1                | Category News | category*
category_creators_v1    | /public/category/{category}/creators/v1            | Category Creators | category*
categories_list_v1      | /public/categories/list/v1                         | Categories List
creators_list_v1        | /public/creators/list/v1                           | Creators List
creator_v1              | /public/creator/{network}/{id}/v1                  | Creator | network* id*
creator_time_series_v1  | /public/creator/{network}/{id}/time-series/v1      | Creator Time Series | network* id* bucket:bucket interval:interval start:int end:int
creator_posts_v1        | /public/creator/{network}/{id}/posts/v1            | Creator Posts | network* id* start:int end:int
posts_v1                | /public/posts/{post_type}/{post_id}/v1             | Posts | post_type* post_id*
posts_time_series_v1    | /public/posts/{post_type}/{post_id}/time-series/v1 | Posts Time Series | post_type* post_id*
coins_list_v2           | /public/coins/list/v2                              | Coins List v2 | sort filter limit:int desc page:int
coins_list_v1           | /public/coins/list/v1                              | Coins List | sort filter limit:int desc page:int
coins_v1                | /public/coins/{coin}/v1                            | Coins | coin*
coins_time_series_v2    | /public/coins/{coin}/time-series/v2                | Coins Time Series | coin* bucket:bucket interval:interval start:int end:int
coins_meta_v1           | /public/coins/{coin}/meta/v1                       | Coins Meta | coin*
stocks_list_v2          | /public/stocks/list/v2                             | Stocks List v2 | sort limit:int desc page:int
stocks_list_v1          | /public/stocks/list/v1                             | Stocks List
stocks_v1               | /public/stocks/{stock}/v1                          | Stocks | stock*
stocks_time_series_v2   | /public/stocks/{stock}/time-series/v2              | Stocks Time Series | stock* bucket:bucket interval:interval start:int end:int
searches_search         | /public/searches/search                            | Searches Search | term search_json
searches_list           | /public/searches/list                              | Searches List
searches_create         | /public/searches/create                            | Searches Create | name* search_json* priority
searches_update         | /public/searches/{slug}/update                     | Searches Update | slug* name search_json* priority
searches_delete         | /public/searches/{slug}/delete                     | Searches Delete | slug*
searches                | /public/searches/{slug}                            | Searches | slug*
topic_v1                | /public/topic/{topic}/v1                           | Topic | topic*
nfts_list_v2            | /public/nfts/list/v2                               | Nfts List v2 | sort limit:int desc page:int
nfts_list_v1            | /public/nfts/list/v1                               | Nfts List
nfts_v1                 | /public/nfts/{nft}/v1                              | Nfts | nft*
nfts_time_series_v2     | /public/nfts/{nft}/time-series/v2                  | Nfts Time Series v2 | nft* bucket:bucket interval:interval start:int end:int
nfts_time_series_v1     | /public/nfts/{nft}/time-series/v1                  | Nfts Time Series | nft*
system_changes          | /public/system/changes                             | System Changes
""",
}
